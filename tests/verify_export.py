#!/usr/bin/env python3
"""Reads what `tessera export --format ome-zarr` wrote with zarr-python from disk (no Tessera
code) and checks it against the slide's HDF5 files read with h5py: every field of view (or, for a
view of one field, the image at the root) equal at every level, and every chunk file the stored
HDF5 chunk's bytes (read_direct_chunk): copied, not recompressed.

usage: verify_export.py SLIDE_EXPORT SLIDE.h5 FUSED_EXPORT FUSED.h5
Prints "verified ..." and exits 0 when everything matches.
"""
import os
import sys

import h5py
import hdf5plugin  # noqa: F401  registers the Blosc filter (32001)
import numpy as np
import zarr


def levels(f):
    return [f["/raw/tiles"]] + [f[f"/raw/levels/{l}/tiles"] for l in range(1, len(f["/raw/levels"]) + 1)]


def check(image_dir, datasets, t):
    image = zarr.open_consolidated(image_dir, mode="r")
    assert len(image.attrs["multiscales"][0]["datasets"]) == len(datasets)
    files = 0
    for level, dataset in enumerate(datasets):
        assert np.array_equal(image[str(level)][:], dataset[t]), f"{image_dir} level {level}"
        _, _, _, cy, cx = dataset.chunks
        for c in range(dataset.shape[1]):
            for z in range(dataset.shape[2]):
                for y in range(-(-dataset.shape[3] // cy)):
                    for x in range(-(-dataset.shape[4] // cx)):
                        _, stored = dataset.id.read_direct_chunk((t, c, z, y * cy, x * cx))
                        with open(os.path.join(image_dir, str(level), str(c), str(z), str(y), str(x)), "rb") as chunk:
                            assert chunk.read() == stored, f"{image_dir} chunk {level}/{c}/{z}/{y}/{x}"
                        files += 1
    return files


def main():
    slide_dir, raw_path, fused_dir, fused_path = sys.argv[1:5]
    files = 0
    with h5py.File(raw_path, "r") as f:
        datasets = levels(f)
        fields = datasets[0].shape[0]
        written = sorted(int(n) for n in os.listdir(os.path.join(slide_dir, "fields")) if n.isdigit())
        assert written == list(range(fields)), f"fields exported: {written}"
        for t in range(fields):
            files += check(os.path.join(slide_dir, "fields", str(t)), datasets, t)
    with h5py.File(fused_path, "r") as f:
        files += check(fused_dir, levels(f), 0)
    print(f"verified {fields} fields and the fused view: {files} chunk files equal to the stored chunks")


if __name__ == "__main__":
    main()
