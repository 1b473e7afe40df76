#!/usr/bin/python3
"""Chunk shape vs access pattern for derived light-sheet volumes (deskewed stacks, fused volumes).

Makes one synthetic fluorescence volume (Z, Y, X) uint16 (background ~100 with shot noise plus sparse
3-D Gaussian cells), written slab by slab into a raw memmap (memory bounded), then for each candidate
chunk shape writes one HDF5 file with the Blosc filter (32001) exactly as Tessera's codec uses it
(common/codec/codec.h BloscParams: lz4, level 5, byte shuffle, 1 thread) and reads from it:

  xy      one XY plane (up to 2048 x 2048) at a random z and offset
  xy512   one 512 x 512 XY tile on the 512 grid at a random z (what the tile server serves)
  xz      one XZ plane: all z, one random y row, --xz-width pixels of x at a random offset
  yz      one YZ plane: all z, one random x column, --xz-width pixels of y
  box256  a 256^3 box at a random, unaligned offset (clipped to the volume)
  box64   a 64^3 box at a random, unaligned offset

Every read opens a fresh file handle (cold HDF5 chunk cache, default 1 MiB); the page cache is warm
(the file was just written and one untimed warm-up read is made), so the figures are warm-cache,
single-core (h5py reads serially, Blosc with 1 thread). The same offsets (fixed seed) are used for
every chunk shape. Small patterns (xy512, box64) use 4 x --rounds. Reported per pattern: median wall
ms, median process CPU ms (time.process_time), chunks touched and the bytes they decompress vs the
bytes asked for (amplification, from the geometry; HDF5 decompresses whole chunks), compressed bytes
read (from the stored chunk sizes), and per file: size, compression ratio, write time/CPU, and the
plane buffer a plane-stream writer needs to form whole chunks (chunk_z planes).

Prints a table and `RESULT name value` lines; names end with the chunk shape, e.g.
`RESULT xy_cpu_ms_8x256x256 12.3`. Run with /usr/bin/python3 (h5py, numpy, hdf5plugin).
"""
import argparse
import math
import os
import shutil
import statistics
import sys
import time

os.environ.setdefault("BLOSC_NTHREADS", "1")  # Tessera's BloscParams.threads = 1; single-core figures

import numpy as np  # noqa: E402

DEFAULT_CHUNKS = ("1x512x512,4x256x256,8x256x256,16x256x256,8x128x128,16x128x128,32x128x128,16x128x256,"
                  "64x64x64,128x128x128")
PATTERNS = ("xy", "xy512", "xz", "box256", "box64", "yz")
DEFAULT_PATTERNS = "xy,xy512,xz,yz,box256,box64"
SMALL = ("xy512", "box64")


def parse_triple(text):
    v = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    if len(v) != 3 or min(v) < 1:
        raise argparse.ArgumentTypeError(f"want ZxYxX, got {text!r}")
    return v


def name_of(chunks):
    return "x".join(str(c) for c in chunks)


# ---------------------------------------------------------------- the synthetic volume

def make_cells(shape, density, rng):
    """Cell list: (z, y, x) centre, (sz, sy, sx) sigma, amplitude above background."""
    n = max(1, int(density * shape[0] * shape[1] * shape[2] / 1e6))
    centre = rng.uniform(0, 1, (n, 3)) * np.array(shape, np.float64)
    sxy = rng.uniform(2.5, 6.0, n)
    sigma = np.stack([sxy * rng.uniform(0.8, 1.5, n), sxy, sxy * rng.uniform(0.9, 1.1, n)], 1)
    amp = rng.lognormal(math.log(400.0), 0.7, n)
    order = np.argsort(centre[:, 0])
    return centre[order], sigma[order], amp[order]


def render_slab(lam, z0, cells, shape):
    """Adds the cells' Gaussians (cut at 3 sigma) to lam, the float32 planes z0 .. z0 + len(lam)."""
    centre, sigma, amp = cells
    z1 = z0 + lam.shape[0]
    reach = 3.0 * sigma
    hit = np.nonzero((centre[:, 0] + reach[:, 0] >= z0) & (centre[:, 0] - reach[:, 0] < z1))[0]
    for i in hit:
        lo = np.maximum(np.floor(centre[i] - reach[i]).astype(int), (z0, 0, 0))
        hi = np.minimum(np.ceil(centre[i] + reach[i]).astype(int) + 1, (z1, shape[1], shape[2]))
        if np.any(hi <= lo):
            continue
        g = [np.exp(-0.5 * ((np.arange(lo[d], hi[d]) - centre[i, d]) / sigma[i, d]) ** 2).astype(np.float32)
             for d in range(3)]
        block = (amp[i] * g[0])[:, None, None] * g[1][None, :, None] * g[2][None, None, :]
        lam[lo[0] - z0:hi[0] - z0, lo[1]:hi[1], lo[2]:hi[2]] += block


def generate(path, shape, density, seed, slab):
    """Writes the volume to a raw uint16 memmap, `slab` planes at a time."""
    rng = np.random.default_rng(seed)
    cells = make_cells(shape, density, rng)
    vol = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=shape)
    lam = np.empty((slab,) + shape[1:], np.float32)
    sub = 4  # planes per noise step (bounds the float temporaries)
    noise = np.empty((sub,) + shape[1:], np.float32)
    root = np.empty_like(noise)
    for z0 in range(0, shape[0], slab):
        n = min(slab, shape[0] - z0)
        view = lam[:n]
        view.fill(100.0)  # background (camera offset + autofluorescence), photo-electrons
        render_slab(view, z0, cells, shape)
        for s0 in range(0, n, sub):
            m = min(sub, n - s0)
            l, nz, rt = view[s0:s0 + m], noise[:m], root[:m]
            # shot noise: Poisson(lam) ~ lam + sqrt(lam) N(0, 1) (lam >= 100, exact enough; 4x faster)
            rng.standard_normal(out=nz, dtype=np.float32)
            np.sqrt(l, out=rt)
            nz *= rt
            nz += l
            np.rint(nz, out=nz)
            np.clip(nz, 0, 65535, out=nz)
            vol[z0 + s0:z0 + s0 + m] = nz
    vol.flush()
    return vol, len(cells[0])


# ---------------------------------------------------------------- reads

def make_requests(shape, patterns, rounds, xz_width, seed):
    """{pattern: [tuple of slices]}, the same for every chunk shape."""
    Z, Y, X = shape

    def off(extent, size):
        return int(rng.integers(0, extent - size + 1)) if extent > size else 0

    req = {}
    for p in patterns:
        rng = np.random.default_rng([seed, 1 + PATTERNS.index(p)])  # a pattern's offsets do not depend on the others
        n = rounds * 4 if p in SMALL else rounds
        out = []
        for _ in range(n + 1):  # the first one is the untimed warm-up
            if p == "xy":
                h, w = min(Y, 2048), min(X, 2048)
                y, x, z = off(Y, h), off(X, w), int(rng.integers(0, Z))
                out.append((slice(z, z + 1), slice(y, y + h), slice(x, x + w)))
            elif p == "xy512":
                h, w = min(Y, 512), min(X, 512)
                y = int(rng.integers(0, max(1, Y // 512))) * 512 if Y >= 512 else 0
                x = int(rng.integers(0, max(1, X // 512))) * 512 if X >= 512 else 0
                z = int(rng.integers(0, Z))
                out.append((slice(z, z + 1), slice(y, y + h), slice(x, x + w)))
            elif p == "yz":
                h = min(Y, xz_width)
                y, x = off(Y, h), int(rng.integers(0, X))
                out.append((slice(0, Z), slice(y, y + h), slice(x, x + 1)))
            elif p == "xz":
                w = min(X, xz_width)
                y, x = int(rng.integers(0, Y)), off(X, w)
                out.append((slice(0, Z), slice(y, y + 1), slice(x, x + w)))
            else:
                b = 256 if p == "box256" else 64
                bz, by, bx = min(Z, b), min(Y, b), min(X, b)
                z, y, x = off(Z, bz), off(Y, by), off(X, bx)
                out.append((slice(z, z + bz), slice(y, y + by), slice(x, x + bx)))
        req[p] = out
    return req


def chunk_ranges(sel, chunks):
    return [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(sel, chunks)]


def geometry(sel, chunks, stored):
    """chunks touched, bytes decompressed, bytes needed, compressed bytes read."""
    rz, ry, rx = chunk_ranges(sel, chunks)
    n = len(rz) * len(ry) * len(rx)
    raw = n * chunks[0] * chunks[1] * chunks[2] * 2
    need = 2 * math.prod(s.stop - s.start for s in sel)
    comp = int(stored[rz.start:rz.stop, ry.start:ry.stop, rx.start:rx.stop].sum())
    return n, raw, need, comp


class Blosc:
    """libblosc (c-blosc 1, what Tessera's codec links) through ctypes: blosc_decompress_ctx, 1 thread."""

    def __init__(self):
        import ctypes
        import ctypes.util
        self.lib = ctypes.CDLL(ctypes.util.find_library("blosc") or "libblosc.so.1")
        self.lib.blosc_decompress_ctx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.lib.blosc_decompress_ctx.restype = ctypes.c_int
        self.lib.blosc_get_version_string.restype = ctypes.c_char_p
        self.version = self.lib.blosc_get_version_string().decode()

    def decompress(self, data, out):
        src = np.frombuffer(data, np.uint8)
        n = self.lib.blosc_decompress_ctx(src.ctypes.data, out.ctypes.data, out.nbytes, 1)
        if n != out.nbytes:
            raise RuntimeError(f"blosc_decompress_ctx gave {n}, want {out.nbytes}")


def read_direct(ds, sel, chunks, blosc, scratch):
    """Tessera's read path (slide_file.cc H5Dread_chunk + codec::Decompress, then the crop): returns the
    selection and the thread CPU seconds spent inside blosc_decompress_ctx alone."""
    out = np.empty(tuple(s.stop - s.start for s in sel), np.uint16)
    dec = 0.0
    for cz in chunk_ranges(sel, chunks)[0]:
        for cy in chunk_ranges(sel, chunks)[1]:
            for cx in chunk_ranges(sel, chunks)[2]:
                origin = (cz * chunks[0], cy * chunks[1], cx * chunks[2])
                _, data = ds.id.read_direct_chunk(origin)
                t0 = time.thread_time()
                blosc.decompress(data, scratch)
                dec += time.thread_time() - t0
                src, dst = [], []
                for o, c, s in zip(origin, chunks, sel):
                    lo, hi = max(o, s.start), min(o + c, s.stop)
                    src.append(slice(lo - o, hi - o))
                    dst.append(slice(lo - s.start, hi - s.start))
                out[tuple(dst)] = scratch[tuple(src)]
    return out, dec


def stored_sizes(ds, chunks, shape):
    grid = tuple(-(-s // c) for s, c in zip(shape, chunks))
    sizes = np.zeros(grid, np.int64)
    for i in range(ds.id.get_num_chunks()):
        info = ds.id.get_chunk_info(i)
        cz, cy, cx = (o // c for o, c in zip(info.chunk_offset, chunks))
        sizes[cz, cy, cx] = info.size
    return sizes


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--shape", type=parse_triple, default=(384, 2048, 2048),
                    help="volume ZxYxX (default 384x2048x2048 = 3 GiB raw; Z > 256 so 256^3 boxes are unaligned in z)")
    ap.add_argument("--chunks", default=DEFAULT_CHUNKS, help=f"comma list of ZxYxX chunk shapes (default {DEFAULT_CHUNKS})")
    ap.add_argument("--rounds", type=int, default=7, help="timed reads per pattern (median; xy512/box64 use 4x) (default 7)")
    ap.add_argument("--patterns", default=DEFAULT_PATTERNS,
                    help=f"comma list from {','.join(PATTERNS)} (default {DEFAULT_PATTERNS})")
    ap.add_argument("--xz-width", type=int, default=2048, help="x extent of the XZ plane, y extent of YZ (default 2048, clipped)")
    ap.add_argument("--density", type=float, default=30.0, help="cells per million voxels (default 30)")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed (volume and offsets)")
    ap.add_argument("--gen-slab", type=int, default=32, help="planes generated at a time (default 32)")
    ap.add_argument("--out-dir", default="/tmp/volume_chunks", help="scratch directory (default /tmp/volume_chunks)")
    ap.add_argument("--keep", action="store_true", help="keep the files (default: delete each HDF5 after its reads, and the directory at the end)")
    args = ap.parse_args()

    import h5py
    import hdf5plugin

    shape = args.shape
    chunk_list = []
    for c in args.chunks.split(","):
        c = parse_triple(c.strip())
        chunk_list.append(tuple(min(a, b) for a, b in zip(c, shape)))
    patterns = [p for p in args.patterns.split(",") if p]
    for p in patterns:
        if p not in PATTERNS:
            sys.exit(f"unknown pattern {p!r}")
    raw_bytes = 2 * math.prod(shape)
    plane_bytes = 2 * shape[1] * shape[2]
    os.makedirs(args.out_dir, exist_ok=True)
    blosc = Blosc()
    filt = hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)

    print(f"# volume {name_of(shape)} uint16 = {raw_bytes / 2**30:.2f} GiB; Blosc lz4 level 5 shuffle, "
          f"BLOSC_NTHREADS={os.environ['BLOSC_NTHREADS']}; h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}, "
          f"hdf5plugin {hdf5plugin.version}, libblosc {blosc.version}; {os.cpu_count()} cores", flush=True)
    t0 = time.perf_counter()
    vol, ncells = generate(os.path.join(args.out_dir, "volume.npy"), shape, args.density, args.seed, args.gen_slab)
    print(f"# generated {ncells} cells in {time.perf_counter() - t0:.1f} s", flush=True)
    requests = make_requests(shape, patterns, args.rounds, args.xz_width, args.seed)

    rows = []
    for chunks in chunk_list:
        name = name_of(chunks)
        path = os.path.join(args.out_dir, f"v_{name}.h5")
        chunk_bytes = 2 * math.prod(chunks)
        # write: a plane-stream writer must hold chunk_z planes before any chunk of them is whole
        wall = cpu = 0.0
        with h5py.File(path, "w", libver="latest") as f:
            ds = f.create_dataset("v", shape=shape, dtype=np.uint16, chunks=chunks, **filt)
            for z0 in range(0, shape[0], chunks[0]):
                block = np.array(vol[z0:z0 + chunks[0]])  # the buffered planes (not timed)
                w0, c0 = time.perf_counter(), time.process_time()
                ds[z0:z0 + block.shape[0]] = block
                wall += time.perf_counter() - w0
                cpu += time.process_time() - c0
            w0, c0 = time.perf_counter(), time.process_time()
            f.flush()
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            stored = stored_sizes(ds, chunks, shape)
        size = os.path.getsize(path)
        row = {"name": name, "chunks": chunks, "chunk_kib": chunk_bytes / 1024,
               "mean_chunk_kib": stored[stored > 0].mean() / 1024, "ratio": raw_bytes / size,
               "size_mib": size / 2**20, "write_s": wall, "write_cpu_s": cpu,
               "buffer_mib": chunks[0] * plane_bytes / 2**20,
               "buffer_2048_mib": chunks[0] * 2048 * 2048 * 2 / 2**20}
        scratch = np.empty(chunks, np.uint16)
        for p in patterns:
            walls, cpus, dcpus, decs = [], [], [], []
            for i, sel in enumerate(requests[p]):
                with h5py.File(path, "r") as f:  # fresh handle: cold chunk cache
                    ds = f["v"]
                    w0, c0 = time.perf_counter(), time.process_time()
                    a = ds[sel]
                    w1, c1 = time.perf_counter(), time.process_time()
                with h5py.File(path, "r") as f:
                    ds = f["v"]
                    c2 = time.process_time()
                    b, dec = read_direct(ds, sel, chunks, blosc, scratch)
                    c3 = time.process_time()
                if i == 0:  # request 0 is the warm-up, and the check that both paths and the source agree
                    if not (np.array_equal(a, b) and np.array_equal(a, vol[sel])):
                        sys.exit(f"{name} {p}: the reads disagree with the volume")
                else:
                    walls.append((w1 - w0) * 1e3)
                    cpus.append((c1 - c0) * 1e3)
                    dcpus.append((c3 - c2) * 1e3)
                    decs.append(dec * 1e3)
            geo = [geometry(s, chunks, stored) for s in requests[p][1:]]
            n, dec, need, comp = (statistics.mean(g[k] for g in geo) for k in range(4))
            row[p] = {"ms": statistics.median(walls), "cpu_ms": statistics.median(cpus), "chunks": n,
                      "dec_mib": dec / 2**20, "need_mib": need / 2**20, "amp": dec / need,
                      "comp_mib": comp / 2**20, "direct_cpu_ms": statistics.median(dcpus),
                      "dec_ms": statistics.median(decs),
                      "dec_gbps": dec / 1e9 / (statistics.median(decs) / 1e3 or 1e-9)}
        rows.append(row)
        reads = ", ".join(f"{p} {row[p]['cpu_ms']:.1f}" for p in patterns)
        print(f"# {name}: written {wall:.1f} s, read cpu ms: {reads}", flush=True)
        if not args.keep:
            os.remove(path)

    # ---- table
    print()
    print("write (h5py, whole chunk_z-plane blocks); buf = chunk_z planes a plane-stream writer holds per stack "
          f"({plane_bytes / 2**20:.0f} MiB a plane here; 8 MiB for 2048 x 2048)")
    print(f"{'chunks':>12} {'KiB':>6} {'stored':>7} {'ratio':>5} {'write s':>7} {'w cpu s':>7} {'w GB/s':>6} "
          f"{'buf MiB':>7} {'buf@2048²':>9}")
    for r in rows:
        print(f"{r['name']:>12} {r['chunk_kib']:6.0f} {r['mean_chunk_kib']:7.0f} {r['ratio']:5.2f} {r['write_s']:7.2f} "
              f"{r['write_cpu_s']:7.2f} {raw_bytes / 1e9 / r['write_cpu_s']:6.2f} {r['buffer_mib']:7.0f} {r['buffer_2048_mib']:9.0f}")
    print("\nper pattern: h5py wall/cpu ms (ds[sel]); x best = h5py cpu / best h5py cpu; amp = decompressed / needed;"
          "\nread MiB = compressed bytes of the touched chunks; direct = Tessera's path (H5Dread_chunk + blosc + crop),"
          "\nits process cpu ms; blosc = cpu ms inside blosc_decompress_ctx alone, and its GB/s (decompressed bytes)")
    for p in patterns:
        need = rows[0][p]["need_mib"]
        best = min(r[p]["cpu_ms"] for r in rows)
        print(f"\n{p}: needs {need:.3f} MiB per read")
        print(f"{'chunks':>12} {'wall ms':>9} {'cpu ms':>9} {'x best':>6} {'chunks':>7} {'decomp MiB':>10} "
              f"{'amp':>7} {'read MiB':>9} {'direct':>8} {'blosc':>8} {'GB/s':>5}")
        for r in rows:
            q = r[p]
            print(f"{r['name']:>12} {q['ms']:9.2f} {q['cpu_ms']:9.2f} {q['cpu_ms'] / best:6.2f} {q['chunks']:7.1f} "
                  f"{q['dec_mib']:10.2f} {q['amp']:7.1f} {q['comp_mib']:9.2f} {q['direct_cpu_ms']:8.2f} "
                  f"{q['dec_ms']:8.2f} {q['dec_gbps']:5.2f}")
    # balance: geometric mean over patterns of (CPU / best CPU for that pattern); 1.0 = best everywhere
    print("\nbalance: geometric mean over patterns of cpu / best cpu (1 = best at every pattern), and the worst pattern")
    print(f"{'chunks':>12} {'h5py':>6} {'worst':>6} {'direct':>7} {'worst':>6}")
    for r in rows:
        for key, tag in (("cpu_ms", "balance"), ("direct_cpu_ms", "balance_direct")):
            rel = [r[p][key] / min(s[p][key] for s in rows) for p in patterns]
            r[tag] = math.exp(statistics.mean(math.log(v) for v in rel))
            r[tag + "_worst"] = max(rel)
        print(f"{r['name']:>12} {r['balance']:6.2f} {r['balance_worst']:6.2f} {r['balance_direct']:7.2f} "
              f"{r['balance_direct_worst']:6.2f}")
    print()
    for r in rows:
        n = r["name"]
        print(f"RESULT ratio_{n} {r['ratio']:.3f}")
        print(f"RESULT write_s_{n} {r['write_s']:.3f}")
        print(f"RESULT write_cpu_s_{n} {r['write_cpu_s']:.3f}")
        print(f"RESULT write_buffer_mib_{n} {r['buffer_mib']:.0f}")
        for p in patterns:
            q = r[p]
            print(f"RESULT {p}_ms_{n} {q['ms']:.3f}")
            print(f"RESULT {p}_cpu_ms_{n} {q['cpu_ms']:.3f}")
            print(f"RESULT {p}_chunks_{n} {q['chunks']:.1f}")
            print(f"RESULT {p}_amp_{n} {q['amp']:.2f}")
            print(f"RESULT {p}_direct_cpu_ms_{n} {q['direct_cpu_ms']:.3f}")
            print(f"RESULT {p}_blosc_cpu_ms_{n} {q['dec_ms']:.3f}")
        print(f"RESULT balance_{n} {r['balance']:.3f}")
        print(f"RESULT balance_direct_{n} {r['balance_direct']:.3f}")

    del vol
    if not args.keep:
        shutil.rmtree(args.out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
