#!/usr/bin/env python3
"""Reads what `tessera export` wrote, with zarr-python and tifffile from disk (no Tessera code),
and checks it against the slide's HDF5 files read with h5py and the gateway's region.npy:

- OME-Zarr as stored: every field of view (or, for a view of one field, the image at the root)
  equal at every level, and every chunk file the stored HDF5 chunk's bytes (read_direct_chunk):
  copied, not recompressed;
- with --tiff: the pyramidal OME-TIFF of the mosaic equal to region.npy of the whole mosaic at
  every level (tifffile's series levels: the SubIFDs), the fused view's equal to its HDF5 levels,
  the OME-XML's physical sizes and channel names those of `tessera info --json`;
- with --roi-tiff / --roi-zarr: a region of interest (OME-TIFF at level 0, OME-Zarr from a given
  level) equal to region.npy of the same box at every level, the OME-Zarr placed where it lies.

usage: verify_export.py SLIDE_EXPORT SLIDE.h5 FUSED_EXPORT FUSED.h5
           [--gateway URL TOKEN ID --info INFO.json --tiff SLIDE.ome.tif FUSED.ome.tif
            --roi-tiff ROI.ome.tif X,Y,W,H --roi-zarr ROI.zarr X,Y,W,H LEVEL]
Prints "verified ..." and exits 0 when everything matches.
"""
import argparse
import io
import json
import os
import urllib.request
import xml.etree.ElementTree as ET

import h5py
import hdf5plugin  # noqa: F401  registers the Blosc filter (32001)
import numpy as np
import tifffile
import zarr

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


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


def czyx(array, axes):
    """tifffile's array with its axes (e.g. ZCYX, CYX, YX) as channels, planes, rows, columns."""
    for axis in "CZ":
        if axis not in axes:
            array, axes = array[np.newaxis], axis + axes
    return np.transpose(array, [axes.index(a) for a in "CZYX"])


def read_tiff(path, info, level):
    """Every level of an exported OME-TIFF as CZYX arrays, its OME-XML checked against `info`."""
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome, f"{path} is not an OME-TIFF to tifffile"
        page = tf.pages[0]
        assert page.is_tiled and page.tilewidth == 512 and page.compression == 8, (page.tilewidth, page.compression)
        pixels = ET.fromstring(tf.ome_metadata).find(f"{OME}Image/{OME}Pixels")
        um = info["pixel_size_um"]
        for axis, size in zip("XY", um[:2]):
            assert np.isclose(float(pixels.get(f"PhysicalSize{axis}")), size * 2 ** level), (axis, pixels.attrib)
            assert pixels.get(f"PhysicalSize{axis}Unit") == "\u00b5m", pixels.attrib
        names = [c.get("Name") for c in pixels.findall(f"{OME}Channel")]
        assert names == info["channels"], (names, info["channels"])
        series = tf.series[0]
        return [czyx(l.asarray(), l.axes) for l in series.levels]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slide_export")
    ap.add_argument("raw")
    ap.add_argument("fused_export")
    ap.add_argument("fused")
    ap.add_argument("--gateway", nargs=3, metavar=("URL", "TOKEN", "ID"))
    ap.add_argument("--info")
    ap.add_argument("--tiff", nargs=2, metavar=("SLIDE_TIFF", "FUSED_TIFF"))
    ap.add_argument("--roi-tiff", nargs=2, metavar=("TIFF", "X,Y,W,H"))
    ap.add_argument("--roi-zarr", nargs=3, metavar=("ZARR", "X,Y,W,H", "LEVEL"))
    args = ap.parse_args()
    files = 0
    with h5py.File(args.raw, "r") as f:
        datasets = levels(f)
        fields = datasets[0].shape[0]
        written = sorted(int(n) for n in os.listdir(os.path.join(args.slide_export, "fields")) if n.isdigit())
        assert written == list(range(fields)), f"fields exported: {written}"
        for t in range(fields):
            files += check(os.path.join(args.slide_export, "fields", str(t)), datasets, t)
    with h5py.File(args.fused, "r") as f:
        files += check(args.fused_export, levels(f), 0)
    said = f"verified {fields} fields and the fused view: {files} chunk files equal to the stored chunks"
    if not args.gateway:
        print(said)
        return
    url, token, slide = args.gateway
    info = json.load(open(args.info))

    def region(level, x, y, w, h):
        request = urllib.request.Request(
            f"{url}/api/slides/{slide}/region.npy?level={level}&x={x}&y={y}&width={w}&height={h}",
            headers={"Authorization": "Bearer " + token})
        return np.load(io.BytesIO(urllib.request.urlopen(request).read()))

    def same_as_regions(got_levels, first, box, what):
        """Level k of `got_levels` is the mosaic's level first + k over the box (x, y, w, h at `first`)."""
        x, y, w, h = box
        assert got_levels[0].shape[2:] == (h, w), (what, got_levels[0].shape, box)
        for k, got in enumerate(got_levels):
            f = 2 ** k
            x0, y0 = x // f, y // f  # level k covers what level 0 covers: [x0, ceil((x + w) / f))
            assert got.shape[3] <= -(-(x + w) // f) - x0 and got.shape[2] <= -(-(y + h) // f) - y0, (what, k, got.shape)
            want = region(first + k, x0, y0, got.shape[3], got.shape[2])
            assert np.array_equal(got, want), f"{what} level {k}: {got.shape} {want.shape}"
        return len(got_levels)

    checked = 0
    if args.tiff:
        slide_tiff, fused_tiff = args.tiff
        got = read_tiff(slide_tiff, info, 0)
        checked += same_as_regions(got, 0, (0, 0, got[0].shape[3], got[0].shape[2]), slide_tiff)
        with h5py.File(args.fused, "r") as f:
            fused_levels = levels(f)
            got = read_tiff(fused_tiff, info, 0)
            for k, level in enumerate(got):
                assert np.array_equal(level, fused_levels[k][0]), f"{fused_tiff} level {k}"
            checked += len(got)
    if args.roi_tiff:
        path, box = args.roi_tiff
        box = [int(v) for v in box.split(",")]
        got = read_tiff(path, info, 0)
        checked += same_as_regions(got, 0, box, path)
    if args.roi_zarr:
        path, box, first = args.roi_zarr
        box, first = [int(v) for v in box.split(",")], int(first)
        image = zarr.open_consolidated(path, mode="r")
        datasets = image.attrs["multiscales"][0]["datasets"]
        got = [image[d["path"]][:] for d in datasets]
        um = info["pixel_size_um"]
        translation = datasets[0]["coordinateTransformations"][1]["translation"]
        f = 2 ** first
        assert np.allclose(translation[2:], [(box[1] * f + (f - 1) / 2) * um[1], (box[0] * f + (f - 1) / 2) * um[0]]), \
            translation
        box[2] = min(box[2], got[0].shape[3])  # clipped at the mosaic's edge
        box[3] = min(box[3], got[0].shape[2])
        checked += same_as_regions(got, first, box, path)
    print(f"{said}; {checked} exported levels equal to the slide's")


if __name__ == "__main__":
    main()
