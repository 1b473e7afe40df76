#!/usr/bin/python3
"""bench/iiif_pyramid.py: IIPImage's copy of a slide, for bench/iiif.

Writes a tiled pyramidal TIFF (the layout IIPImage 1.1 reads: one IFD per resolution, the
full resolution first, each next one half the last) from the zoom levels `tessera get`
wrote, one TIFF per level, so that IIPImage serves exactly the pixels Tessera serves.

    iiif_pyramid.py OUT.tif TILE MIN MAX LEVEL0.tif LEVEL1.tif ...

TILE: tile edge (512: the gateway's). MIN MAX: the display window, written as
SMinSampleValue / SMaxSampleValue, which IIPImage maps to 0..255 for 16-bit images (the
gateway's default window, so that both send the same picture). The tiles are the slide's
uint16 values, deflate-compressed (lossless, as the slide is). Prints one line: the file's
size and its levels.
"""
import os
import sys

import tifffile


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    out, tile, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    levels = sys.argv[5:]
    tmp = out + ".part"
    shapes = []
    with tifffile.TiffWriter(tmp, bigtiff=False) as tif:
        for path in levels:
            data = tifffile.imread(path)
            if data.ndim != 2:
                sys.exit(f"iiif_pyramid: {path} has shape {data.shape}: one 2-D plane per level expected")
            shapes.append(data.shape)
            if data.dtype != "uint16":
                sys.exit(f"iiif_pyramid: {path} is {data.dtype}, uint16 expected")
            # SMinSampleValue (340), SMaxSampleValue (341): IIPImage's range for > 8-bit images.
            extratags = [(340, "H", 1, lo, True), (341, "H", 1, hi, True)]
            tif.write(data, tile=(tile, tile), compression="zlib", photometric="minisblack",
                      metadata=None, extratags=extratags)
    os.replace(tmp, out)
    print(f"{out}: {os.path.getsize(out) / 1e6:.1f} MB, {len(shapes)} levels "
          f"{' '.join(f'{w}x{h}' for h, w in shapes)}, {tile}x{tile} tiles, uint16, deflate")


if __name__ == "__main__":
    main()
