#!/usr/bin/env python3
"""The h5py + hdf5plugin peer of bench/tiles: reads and decodes the same chunks and
mosaic regions from the same slide file, as a Python analysis script would.

  h5py_tiles.py evict FILE                    write FILE back and drop it from the page cache (cold reads)
  h5py_tiles.py chunks FILE KEYS PROCS        KEYS: "tile cy cx" lines; PROCS processes
  h5py_tiles.py regions FILE BOXES INFO_JSON [COMPARE.raw]
                                              BOXES: "level x y w h" lines; the mosaic
                                              composed with numpy at the positions of
                                              `tessera info --json` (higher tile on top);
                                              COMPARE: tessera's first region, checked equal

Each reads into one reused array (`read_direct`), h5py's fastest form, as Tessera's side of
the benchmark reads into one reused Array. Prints key=value pairs on one line.
"""
import json
import multiprocessing
import os
import sys
import time

import numpy as np


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)  # pages still being written back cannot be dropped
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def dataset(f, level):
    return f["/raw/tiles"] if level == 0 else f[f"/raw/levels/{level}/tiles"]


def _read_keys(args):
    import h5py
    import hdf5plugin  # noqa: F401  (registers Blosc)

    path, keys = args
    ms = []
    with h5py.File(path, "r") as f:
        ds = f["/raw/tiles"]
        cy_, cx_ = ds.chunks[3], ds.chunks[4]
        h, w = ds.shape[3], ds.shape[4]
        blocks = {}  # one array per block shape (edge chunks are smaller)
        for t, cy, cx in keys:
            t0 = time.perf_counter()
            y1, x1 = min(h, (cy + 1) * cy_), min(w, (cx + 1) * cx_)
            shape = (y1 - cy * cy_, x1 - cx * cx_)
            block = blocks.get(shape)
            if block is None:
                block = blocks[shape] = np.empty(shape, dtype=ds.dtype)
            ds.read_direct(block, np.s_[t, 0, 0, cy * cy_:y1, cx * cx_:x1])
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def chunks(path, keys_path, procs):
    keys = [tuple(int(v) for v in line.split()) for line in open(keys_path)]
    procs = int(procs)
    shares = [(path, keys[i::procs]) for i in range(procs)]
    with multiprocessing.Pool(procs) as pool:
        pool.map(_read_keys, [(path, [])] * procs)  # processes up before the clock starts
        start = time.perf_counter()
        ms = [v for part in pool.map(_read_keys, shares) for v in part]
        secs = time.perf_counter() - start
    ms.sort()
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    print(f"requests={len(keys)} seconds={secs:.3f} per_s={len(keys) / secs:.1f} "
          f"p50_ms={p(0.5):.3f} p99_ms={p(0.99):.3f}")


def regions(path, boxes_path, info_path, compare=None):
    import h5py
    import hdf5plugin  # noqa: F401

    info = json.load(open(info_path))
    pos = np.array([[t["x"], t["y"]] for t in info["tiles"]], dtype=np.float64)
    boxes = [tuple(int(v) for v in line.split()) for line in open(boxes_path)]
    nbytes = 0
    ms = []
    with h5py.File(path, "r") as f:
        outs = {}  # one array per box shape, cleared for each box
        start = time.perf_counter()
        for i, (level, bx, by, bw, bh) in enumerate(boxes):
            t0 = time.perf_counter()
            ds = dataset(f, level)
            th, tw = ds.shape[3], ds.shape[4]
            tx = np.floor(pos[:, 0] / 2**level + 0.5).astype(np.int64)
            ty = np.floor(pos[:, 1] / 2**level + 0.5).astype(np.int64)
            out = outs.get((bh, bw))
            if out is None:
                out = outs[(bh, bw)] = np.empty((bh, bw), dtype=ds.dtype)
            out.fill(0)
            hit = (tx < bx + bw) & (tx + tw > bx) & (ty < by + bh) & (ty + th > by)
            for t in np.nonzero(hit)[0]:  # in index order: the higher tile lands on top
                x0, y0 = max(bx, tx[t]), max(by, ty[t])
                x1, y1 = min(bx + bw, tx[t] + tw), min(by + bh, ty[t] + th)
                ds.read_direct(out, np.s_[t, 0, 0, y0 - ty[t]:y1 - ty[t], x0 - tx[t]:x1 - tx[t]],
                               np.s_[y0 - by:y1 - by, x0 - bx:x1 - bx])
            ms.append((time.perf_counter() - t0) * 1e3)
            nbytes += out.nbytes
            if i == 0 and compare:
                theirs = np.fromfile(compare, dtype=out.dtype).reshape(out.shape)
                if not np.array_equal(out, theirs):
                    sys.exit(f"tessera's first region differs from h5py's in {np.count_nonzero(out != theirs)} pixels")
        secs = time.perf_counter() - start
    ms.sort()
    print(f"regions={len(boxes)} seconds={secs:.3f} bytes={nbytes} GBps={nbytes / secs / 1e9:.3f} "
          f"p50_ms={ms[len(ms) // 2]:.3f} same_pixels={'yes' if compare else 'unchecked'}")


if __name__ == "__main__":
    {"evict": evict, "chunks": chunks, "regions": regions}[sys.argv[1]](*sys.argv[2:])
