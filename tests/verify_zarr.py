#!/usr/bin/env python3
"""Reads a slide through the gateway's OME-Zarr routes with zarr-python over fsspec's HTTP
(no Tessera code) and checks it against the slide's HDF5 files read with h5py:

- fields of view /zarr/ID/fields/T/: every level equal to /raw/tiles and /raw/levels/L/tiles,
  and every chunk's bytes equal to the stored HDF5 chunk's (read_direct_chunk);
- the mosaic /zarr/ID/: equal to the gateway's region.npy of the same box at every level;
- the fused view /zarr/ID:fused/: every level equal to the fused file, chunk bytes the stored ones;
- the OME metadata: axes, one dataset per level, translations at the solved positions.

With --zarrita DIR, also the levels zarrita read through the Zarr v3 routes (written there by
tests/browser/zarrita_test.mjs for ID/fields/T, ID and ID:fused) are checked the same way.

usage: verify_zarr.py GATEWAY_URL TOKEN SLIDE_ID SLIDE.h5 FUSED.h5 INFO.json [--zarrita DIR]
Prints "verified ..." and exits 0 when everything matches.
"""
import io
import json
import os
import sys

import fsspec
import h5py
import hdf5plugin  # noqa: F401  registers the Blosc filter (32001)
import numpy as np
import zarr


def main():
    url, token, slide, raw_path, fused_path, info_path = sys.argv[1:7]
    dumps = sys.argv[8] if len(sys.argv) > 8 and sys.argv[7] == "--zarrita" else None
    v3_checked = 0

    def same_as_zarrita(path, level, want):
        """The level zarrita read of image `path`, if it was asked to, equals `want`."""
        nonlocal v3_checked
        if dumps is None:
            return
        folder = os.path.join(dumps, path.replace("/", "_").replace(":", "_"))
        shape = json.load(open(os.path.join(folder, "shape.json")))[level]
        got = np.fromfile(os.path.join(folder, f"{level}.bin"), dtype=want.dtype.newbyteorder("<")).reshape(shape)
        assert np.array_equal(got, want), f"zarrita's level {level} of {path} differs"
        v3_checked += 1
    headers = {"Authorization": "Bearer " + token} if token else {}
    fs = fsspec.filesystem("http", headers=headers)
    info = json.load(open(info_path))
    um = info["pixel_size_um"]
    checked_chunks = 0

    def open_image(path):
        return zarr.open_consolidated(fsspec.get_mapper(f"{url}/zarr/{path}", headers=headers), mode="r")

    def same_chunks(mapper, dataset, t, level):
        nonlocal checked_chunks
        _, c, z, cy, cx = dataset.chunks
        for ci in range(dataset.shape[1]):
            for zi in range(dataset.shape[2]):
                for yi in range(-(-dataset.shape[3] // cy)):
                    for xi in range(-(-dataset.shape[4] // cx)):
                        _, stored = dataset.id.read_direct_chunk((t, ci, zi, yi * cy, xi * cx))
                        served = mapper[f"{level}/{ci}/{zi}/{yi}/{xi}"]
                        assert served == stored, f"chunk {level}/{ci}/{zi}/{yi}/{xi} of field {t} differs"
                        checked_chunks += 1

    with h5py.File(raw_path, "r") as f:
        levels = [f["/raw/tiles"]] + [f[f"/raw/levels/{l}/tiles"] for l in range(1, len(f["/raw/levels"]) + 1)]
        fields = f["/raw/tiles"].shape[0]
        for t in sorted({0, fields // 2, fields - 1}):
            image = open_image(f"{slide}/fields/{t}")
            ms = image.attrs["multiscales"][0]
            assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"], ms["axes"]
            assert len(ms["datasets"]) == len(levels), (len(ms["datasets"]), len(levels))
            tile = info["tiles"][t]
            translation = ms["datasets"][0]["coordinateTransformations"][1]["translation"]
            assert np.allclose(translation[2:], [tile["y"] * um[1], tile["x"] * um[0]]), (translation, tile)
            assert image.attrs["omero"]["channels"][0]["label"] == info["channels"][0]
            for level, dataset in enumerate(levels):
                served = image[str(level)][:]
                assert served.dtype == dataset.dtype and np.array_equal(served, dataset[t]), f"field {t} level {level}"
                same_as_zarrita(f"{slide}/fields/{t}", level, dataset[t])
                same_chunks(fsspec.get_mapper(f"{url}/zarr/{slide}/fields/{t}", headers=headers), dataset, t, level)

    mosaic = open_image(slide)
    for level in range(len(mosaic.attrs["multiscales"][0]["datasets"])):
        array = mosaic[str(level)]
        h, w = array.shape[2:]
        x, y = w // 5, h // 7
        bw, bh = min(w - x, 700), min(h - y, 500)
        npy = fs.cat(f"{url}/api/slides/{slide}/region.npy?level={level}&x={x}&y={y}&width={bw}&height={bh}")
        want = np.load(io.BytesIO(npy))
        got = array[:, :, y:y + bh, x:x + bw]
        same_as_zarrita(slide, level, array[:])
        assert np.array_equal(got, want), (f"mosaic level {level} differs from region.npy at {x},{y} {bw}x{bh}: "
                                           f"{got.shape} {want.shape} {np.argwhere(got != want)[:5]}")

    fused = open_image(f"{slide}:fused")
    mapper = fsspec.get_mapper(f"{url}/zarr/{slide}:fused", headers=headers)
    with h5py.File(fused_path, "r") as f:
        levels = [f["/raw/tiles"]] + [f[f"/raw/levels/{l}/tiles"] for l in range(1, len(f["/raw/levels"]) + 1)]
        assert len(fused.attrs["multiscales"][0]["datasets"]) == len(levels)
        for level, dataset in enumerate(levels):
            got = fused[str(level)][:]
            assert np.array_equal(got, dataset[0]), (f"fused level {level}: {got.shape} {dataset.shape} "
                                                     f"{fused[str(level)].chunks} {dataset.chunks}")
            same_chunks(mapper, dataset, 0, level)
            same_as_zarrita(f"{slide}:fused", level, dataset[0])
    print(f"verified 3 fields, the mosaic and the fused view; {checked_chunks} chunks byte for byte; "
          f"{v3_checked} levels read by zarrita")


if __name__ == "__main__":
    main()
