#!/usr/bin/env python3
"""Reads a Tessera slide file with h5py + hdf5plugin only (no Tessera code) and checks
/raw/tiles against the TIFF tiles of a Fiji TileConfiguration.txt, bit for bit, and every
zoom level /raw/levels/L/tiles against a numpy 2x2 mean of the level below.

usage: verify_slide.py SLIDE.h5 TileConfiguration.txt
Exits 0 and prints "verified N tiles and L levels" when everything matches.
"""
import os
import re
import sys

import h5py
import hdf5plugin  # noqa: F401  registers the Blosc filter (32001)
import numpy as np
import tifffile


def tiles(config):
    base = os.path.dirname(config)
    for line in open(config):
        line = line.split("#", 1)[0].strip()
        if not line or re.match(r"dim\s*=", line):
            continue
        yield os.path.join(base, line.split(";")[0].strip())


def halve(a):
    """(a + b + c + d + 2) >> 2 over 2x2 blocks; odd edges pair with themselves."""
    a = a.astype(np.uint32)
    if a.shape[-2] % 2:
        a = np.concatenate([a, a[..., -1:, :]], axis=-2)
    if a.shape[-1] % 2:
        a = np.concatenate([a, a[..., :, -1:]], axis=-1)
    s = a[..., 0::2, 0::2] + a[..., 1::2, 0::2] + a[..., 0::2, 1::2] + a[..., 1::2, 1::2] + 2
    return s >> 2


def check_levels(f):
    levels = sorted(int(k) for k in f["/raw/levels"].keys())
    assert levels == list(range(1, len(levels) + 1)), levels
    assert f["/raw/levels_written"][()].all(), "levels not all written"
    below = f["/raw/tiles"][()]
    for level in levels:
        data = f[f"/raw/levels/{level}/tiles"]
        assert "32001" in data._filters, f"level {level} is not Blosc-compressed"
        got = data[()]
        want = halve(below).astype(below.dtype)
        if not np.array_equal(got, want):
            diff = np.argwhere(got != want)
            sys.exit(f"level {level} differs from the 2x2 mean at {len(diff)} pixels, first {diff[0]}")
        below = got
    return len(levels)


def main(slide, config):
    with h5py.File(slide, "r") as f:
        data = f["/raw/tiles"]
        assert data.attrs["axes"] == "TCZYX", data.attrs["axes"]
        filters = data._filters
        assert "32001" in filters, f"/raw/tiles is not Blosc-compressed: {filters}"
        names = [n.decode() if isinstance(n, bytes) else n for n in f["/raw/tile_names"][()]]
        written = f["/raw/written"][()]
        paths = list(tiles(config))
        assert data.shape[0] == len(paths), (data.shape, len(paths))
        for t, path in enumerate(paths):
            expected = tifffile.imread(path)
            if expected.ndim == 2:
                expected = expected[np.newaxis]
            got = data[t, 0]
            assert names[t] == os.path.basename(path), (names[t], path)
            assert written[t, 0].all(), f"tile {t} not marked written"
            assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
            if not np.array_equal(got, expected):
                diff = np.argwhere(got != expected)
                sys.exit(f"tile {t} ({path}) differs at {len(diff)} pixels, first {diff[0]}")
        n_levels = check_levels(f)
    print(f"verified {len(paths)} tiles and {n_levels} levels")


if __name__ == "__main__":
    main(*sys.argv[1:])
