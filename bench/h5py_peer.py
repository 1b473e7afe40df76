#!/usr/bin/env python3
"""The h5py + hdf5plugin peer of bench/ingest: writes the same frames the same way
(Blosc lz4 + byte shuffle, chunks (1, 1, 1, 512, 512), shape (T, 1, 1, Y, X)) and
reports raw GB/s and its CPU. Also measures the disk: the given number of bytes written in 8 MiB
blocks with fdatasync once a second, as the durable writer does.

usage: h5py_peer.py h5py FRAMES.raw EDGE SECONDS OUT.h5
       h5py_peer.py disk BYTES OUT.bin
"""
import os
import sys
import time

import numpy as np


def h5py_peer(frames_path, edge, seconds, out):
    import h5py
    import hdf5plugin

    edge = int(edge)
    frames = np.fromfile(frames_path, dtype=np.uint16).reshape(-1, edge, edge)
    n_max = 100000
    t0 = os.times()
    cpu0 = t0.user + t0.system
    start = time.perf_counter()
    n = 0
    with h5py.File(out, "w") as f:
        ds = f.create_dataset(
            "/raw/tiles", shape=(n_max, 1, 1, edge, edge), dtype=np.uint16,
            chunks=(1, 1, 1, 512, 512),
            **hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
        while time.perf_counter() - start < float(seconds):
            ds[n, 0, 0] = frames[n % len(frames)]
            n += 1
    secs = time.perf_counter() - start
    t = os.times()
    print(f"frames={n} raw_bytes={n * edge * edge * 2} seconds={secs:.3f} cpu_s={t.user + t.system - cpu0:.2f}")
    os.remove(out)


def disk(nbytes, out):
    nbytes = int(nbytes)
    block = np.random.default_rng(0).integers(0, 255, 8 << 20, dtype=np.uint8).tobytes()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = os.times()
    start = last_sync = time.perf_counter()
    written = 0
    while written < nbytes:
        written += os.write(fd, block)
        if time.perf_counter() - last_sync >= 1.0:
            os.fdatasync(fd)
            last_sync = time.perf_counter()
    os.fdatasync(fd)
    secs = time.perf_counter() - start
    t = os.times()
    os.close(fd)
    os.remove(out)
    # The kernel's share: copying into the page cache and writing back, per GB written.
    print(f"bytes={written} seconds={secs:.3f} cpu_s={t.user + t.system - t0.user - t0.system:.2f}")


if __name__ == "__main__":
    {"h5py": h5py_peer, "disk": disk}[sys.argv[1]](*sys.argv[2:])
