#!/usr/bin/env python3
"""Damages one stored chunk of a closed slide file in place, as a failing disk would:
flips bytes in the middle of chunk (t, 0, 0, cy, cx) of /raw/tiles. Uses h5py only to
find where the chunk lies.

usage: corrupt_chunk.py SLIDE.h5 T CY CX
"""
import sys

import h5py

path, t, cy, cx = sys.argv[1], *map(int, sys.argv[2:])
with h5py.File(path, "r") as f:
    ds = f["/raw/tiles"]
    chunk = ds.chunks
    info = ds.id.get_chunk_info_by_coord((t, 0, 0, cy * chunk[3], cx * chunk[4]))
with open(path, "r+b") as out:
    out.seek(info.byte_offset + info.size // 2)
    data = bytearray(out.read(8))
    out.seek(info.byte_offset + info.size // 2)
    out.write(bytes(b ^ 0xFF for b in data))
print(f"damaged {info.size}-byte chunk at offset {info.byte_offset}")
