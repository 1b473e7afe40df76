#!/usr/bin/python3
"""The peers of bench/volume (run with /usr/bin/python3: numpy, scikit-image, h5py, hdf5plugin).

  volume_peers.py register DIR [--rounds R] [--upsample U]
      scikit-image's phase_cross_correlation (upsample_factor U, default 10) in 3-D on the same
      overlap windows tessera_bench_volume registers: DIR/stacks.u16 (T x Z x H x W uint16) and
      DIR/pairs.json; each pair's two windows (OverlapWindows, every plane) as float32 arrays,
      one thread, every pair R times (default 3). One key=value line: the per-pair median time
      and the max abs error per axis against the generator's truth (b minus a).

  volume_peers.py read FILE.fused.h5 DUMP_DIR Y X0 W Z0 Z1 BX BY BZ BW BH BD [--rounds R]
      h5py + hdf5plugin on the fused volume (/raw/tiles, shape (1, C, Z, Y, X)): the XZ plane
      [Z0:Z1, Y, X0:X0+W] and the box [BZ:BZ+BD, BY:BY+BH, BX:BX+BW] of channel 0, each read once
      to warm up, then R times (default 5), each from a fresh file handle (HDF5's chunk cache
      cold, the page cache warm, as the dealer's cache is); checked equal to Tessera's reads of
      the same voxels (DUMP_DIR/xz.u16, box.u16). One key=value line.
"""
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402


def option(args, name, default):
    return type(default)(args[args.index(name) + 1]) if name in args else default


def register(folder, *args):
    from skimage.registration import phase_cross_correlation

    rounds, upsample = option(args, "--rounds", 3), option(args, "--upsample", 10)
    meta = json.load(open(os.path.join(folder, "pairs.json")))
    w, h, planes, count = meta["width"], meta["height"], meta["planes"], meta["tiles"]
    stacks = np.memmap(os.path.join(folder, "stacks.u16"), dtype="<u2", mode="r", shape=(count, planes, h, w))
    times, cpus = [], []
    err = [0.0, 0.0, 0.0]
    for r in range(rounds + 1):  # round 0 warms up (page cache, FFT setup); not timed
        for p in meta["pairs"]:
            ax0, ay0, ax1, ay1 = p["window_a"]
            bx0, by0, bx1, by1 = p["window_b"]
            t0, c0 = time.perf_counter(), time.process_time()
            a = np.array(stacks[p["a"], :, ay0:ay1, ax0:ax1], dtype=np.float32)
            b = np.array(stacks[p["b"], :, by0:by1, bx0:bx1], dtype=np.float32)
            if a.shape != b.shape:  # the same shape for the transform: the common part from each corner
                common = tuple(min(m, n) for m, n in zip(a.shape, b.shape))
                a, b = a[tuple(slice(0, n) for n in common)], b[tuple(slice(0, n) for n in common)]
            shift, _, _ = phase_cross_correlation(a, b, upsample_factor=upsample)
            if r > 0:
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            # b[i] = a[i + shift]: in the windows' voxels; b's origin in a's is that plus the corners.
            got = [shift[2] + ax0 - bx0, shift[1] + ay0 - by0, shift[0]]
            if r == rounds:
                for axis in range(3):
                    err[axis] = max(err[axis], abs(got[axis] - p["truth"][axis]))
                print(f"  skimage pair {p['a']}-{p['b']}: ({got[0]:.3f}, {got[1]:.3f}, {got[2]:.3f}) truth "
                      f"({p['truth'][0]:.3f}, {p['truth'][1]:.3f}, {p['truth'][2]:.3f}) window {list(a.shape)}",
                      file=sys.stderr)
    print(f"skimage3d pairs={len(meta['pairs'])} rounds={rounds} upsample={upsample} "
          f"ms_per_pair={1000 * statistics.median(times):.2f} cpu_ms_per_pair={1000 * statistics.median(cpus):.2f} "
          f"err_x={err[0]:.3f} err_y={err[1]:.3f} err_z={err[2]:.3f}")


def read(path, dump, y, x0, w, z0, z1, bx, by, bz, bw, bh, bd, *args):
    import h5py
    import hdf5plugin  # noqa: F401  (registers Blosc)

    y, x0, w, z0, z1, bx, by, bz, bw, bh, bd = (int(v) for v in (y, x0, w, z0, z1, bx, by, bz, bw, bh, bd))
    rounds = option(args, "--rounds", 5)
    reads = {
        "xz": (np.s_[0, 0, z0:z1, y, x0:x0 + w], (z1 - z0, w)),
        "box": (np.s_[0, 0, bz:bz + bd, by:by + bh, bx:bx + bw], (bd, bh, bw)),
    }
    out = []
    for name, (where, shape) in reads.items():
        ms, cpu = [], []
        for r in range(rounds + 1):
            with h5py.File(path, "r") as f:
                ds = f["/raw/tiles"]
                t0, c0 = time.perf_counter(), time.process_time()
                v = ds[where]
                if r > 0:
                    ms.append(1000 * (time.perf_counter() - t0))
                    cpu.append(1000 * (time.process_time() - c0))
        ours = np.fromfile(os.path.join(dump, f"{name}.u16"), dtype="<u2").reshape(shape)
        if not np.array_equal(ours, v):
            sys.exit(f"{name}: tessera's read differs from h5py's in {np.count_nonzero(ours != v)} of {v.size} voxels")
        out.append(f"{name}_ms={statistics.median(ms):.3f} {name}_ms_min={min(ms):.3f} "
                   f"{name}_cpu_ms={statistics.median(cpu):.3f} {name}_mb={v.nbytes / 1e6:.3f}")
    print("h5py " + " ".join(out) + " same_voxels=yes")


if __name__ == "__main__":
    {"register": register, "read": read}[sys.argv[1]](*sys.argv[2:])
