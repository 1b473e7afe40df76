#!/usr/bin/env python3
"""Reads a region of a slide (live while it is scanned) over HTTP with zarr-python and numpy:
no package of Tessera's needed, only Debian's python3-zarr, python3-fsspec and python3-aiohttp.

usage: read_zarr.py GATEWAY_URL SLIDE_ID [TOKEN_FILE] [--level L] [--box X,Y,W,H]

  read_zarr.py http://127.0.0.1:8080 s000001 data/security/http.token --level 1 --box 0,0,1024,1024

Prints the region's shape, range and mean per channel, and saves it as region.npy.
"""
import argparse

import fsspec
import numpy as np
import zarr


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="the gateway, e.g. http://127.0.0.1:8080")
    p.add_argument("slide", help="a slide id (s000001) or view (s000001:fused)")
    p.add_argument("token_file", nargs="?", help="the gateway's token file (DATA/security/http.token)")
    p.add_argument("--level", type=int, default=0, help="zoom level: 0 is full resolution, each next one half")
    p.add_argument("--box", default="0,0,1024,1024", help="X,Y,W,H in the level's pixels")
    p.add_argument("-o", "--output", default="region.npy")
    a = p.parse_args()
    headers = {"Authorization": "Bearer " + open(a.token_file).read().strip()} if a.token_file else {}
    image = zarr.open_consolidated(fsspec.get_mapper(f"{a.url}/zarr/{a.slide}", headers=headers), mode="r")
    levels = image.attrs["multiscales"][0]["datasets"]
    if not 0 <= a.level < len(levels):
        raise SystemExit(f"level {a.level}: the slide has levels 0 to {len(levels) - 1}")
    array = image[levels[a.level]["path"]]  # (c, z, y, x)
    x, y, w, h = (int(v) for v in a.box.split(","))
    region = array[:, :, y:y + h, x:x + w]  # only the chunks under the box are fetched
    names = [c["label"] for c in image.attrs["omero"]["channels"]]
    print(f"{a.slide} level {a.level}: array {array.shape}, region {region.shape} {region.dtype}")
    for c, name in enumerate(names):
        print(f"  {name}: min {region[c].min()} max {region[c].max()} mean {region[c].mean():.1f}")
    np.save(a.output, region)
    print(f"saved {a.output}")


if __name__ == "__main__":
    main()
