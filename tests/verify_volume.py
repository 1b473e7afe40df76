#!/usr/bin/python3
"""Reads a fused volume (DATA/slides/<id>.fused.h5) with h5py + hdf5plugin only (no Tessera
code) and checks its layout: chunks of 8 x 128 x 128 voxels (clamped to the volume), every level
a 3-D dataset of its own depth; z halved from level l to l + 1 exactly where level l's voxel is
not coarser in z than in x (anisotropy-aware levels), the level then the 2 x 2 x 2 mean
rounded as (sum + 4) >> 3, else the 2 x 2 mean of each plane, edges replicated; the voxel size
of each level. With TIFF and LEVEL, also that the TIFF stack (`tessera get --level LEVEL --box`
of the whole level) equals the level.

usage: verify_volume.py FUSED.h5 [TIFF LEVEL]
Exits 0 and prints "volume of D planes in chunks (z, y, x), L levels, z halved at levels [...]".
"""
import sys

import h5py
import hdf5plugin  # noqa: F401  registers the Blosc filter (32001)
import numpy as np


def halve(a, halve_z):
    """The level above `a` (z, y, x): edges replicated, means rounded half up."""
    z, y, x = a.shape
    pad = ((0, z % 2 if halve_z else 0), (0, y % 2), (0, x % 2))
    b = np.pad(a.astype(np.uint32), pad, mode="edge")
    s = b[:, 0::2, 0::2] + b[:, 1::2, 0::2] + b[:, 0::2, 1::2] + b[:, 1::2, 1::2]
    if halve_z:
        return ((s[0::2] + s[1::2] + 4) >> 3).astype(a.dtype)
    return ((s + 2) >> 2).astype(a.dtype)


def main(path, tiff=None, tiff_level=None):
    with h5py.File(path, "r") as f:
        base = f["/raw/tiles"]
        assert "32001" in base._filters, "the fused volume is not Blosc-compressed"
        t, c, depth, height, width = base.shape
        want_chunk = (1, 1, min(8, depth), min(128, height), min(128, width))
        assert base.chunks == want_chunk, (base.chunks, want_chunk)
        levels = [base] + [f[f"/raw/levels/{l}/tiles"] for l in range(1, len(f["/raw/levels"]) + 1)]
        pixel = list(base.attrs["pixel_size_um"])  # z, y, x
        halved = []
        for l in range(1, len(levels)):
            below, level = levels[l - 1], levels[l]
            vz, vx = below.attrs["pixel_size_um"][0], below.attrs["pixel_size_um"][2]
            halve_z = below.shape[2] > 1 and vz <= vx * (1 + 1e-9)
            if halve_z:
                halved.append(l)
            want_depth = (below.shape[2] + 1) // 2 if halve_z else below.shape[2]
            assert level.shape[2] == want_depth, (l, level.shape, want_depth)
            assert level.chunks[2] == min(8, want_depth), (l, level.chunks)
            scale_z = 2 ** len(halved)
            assert np.allclose(level.attrs["pixel_size_um"], [pixel[0] * scale_z, pixel[1] * 2**l, pixel[2] * 2**l]), (
                l, level.attrs["pixel_size_um"])
            for ci in range(c):
                got, want = level[0, ci], halve(below[0, ci], halve_z)
                assert got.shape == want.shape, (l, got.shape, want.shape)
                if not np.array_equal(got, want):
                    bad = np.argwhere(got != want)[0]
                    raise AssertionError(f"level {l} channel {ci} differs at {tuple(bad)}: {got[tuple(bad)]} "
                                         f"instead of {want[tuple(bad)]}")
        if tiff:
            import tifffile
            a = tifffile.imread(tiff)
            level = levels[int(tiff_level)][0, 0]
            assert a.shape == level.shape, (a.shape, level.shape)
            assert np.array_equal(a, level), "the TIFF stack differs from the level"
        print(f"volume of {depth} planes in chunks {base.chunks[2:]}, {len(levels)} levels, z halved at levels {halved}")


if __name__ == "__main__":
    main(*sys.argv[1:])
