#!/usr/bin/python3
"""Reads an oblique scan's slide file and its deskewed view with h5py + hdf5plugin only (no
Tessera code) and checks every stack of the view against the numpy reference of the deskew
convention (tests/deskew_reference.py) applied to the raw stack: bit for bit where the shear is
whole, within 1 grey level where it is interpolated; every zoom level the 2x2 mean of the level
below (tests/verify_slide.py); the voxel size the deskew's.

usage: verify_deskewed.py SLIDE.h5 SLIDE.deskewed.h5
Exits 0 and prints "verified N stacks of K planes, L levels, max difference D" when all match.
"""
import json
import math
import os
import sys

import h5py
import hdf5plugin  # noqa: F401  registers the Blosc filter (32001)
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deskew_reference import deskew  # noqa: E402
from verify_slide import check_levels  # noqa: E402


def main(raw_path, view_path):
    with h5py.File(raw_path, "r") as raw, h5py.File(view_path, "r") as view:
        plan = json.loads(raw.attrs["plan"])
        o = plan["oblique"]
        pixel = plan["pixel_size_um"][0]
        s = o["stage_step_um"] * math.cos(math.radians(o["angle_deg"])) / pixel
        whole = abs(s - round(s)) <= 1e-9
        stacks = raw["/raw/tiles"]
        got_all = view["/raw/tiles"]
        assert "32001" in got_all._filters, "the deskewed view is not Blosc-compressed"
        assert view["/raw/written"][()].all(), "the deskewed view is not whole"
        want_voxel = [o["stage_step_um"] * math.sin(math.radians(o["angle_deg"])), pixel, pixel]  # z, y, x
        assert np.allclose(got_all.attrs["pixel_size_um"], want_voxel), (got_all.attrs["pixel_size_um"], want_voxel)
        worst = 0
        for t in range(stacks.shape[0]):
            for c in range(stacks.shape[1]):
                want = deskew(stacks[t, c], o["angle_deg"], o["stage_step_um"], pixel, o["scan_direction"],
                              o.get("rotate_90", 0), o.get("flip_ud", False))
                got = got_all[t, c]
                assert got.shape == want.shape, (got.shape, want.shape)
                diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
                worst = max(worst, int(diff.max()))
                if diff.max() > (0 if whole else 1):
                    sys.exit(f"stack {t} channel {c} differs from the reference by {diff.max()} "
                             f"at {np.argwhere(diff == diff.max())[0]}")
        n_levels = check_levels(view)
    print(f"verified {stacks.shape[0]} stacks of {stacks.shape[2]} planes, {n_levels} levels, max difference {worst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
