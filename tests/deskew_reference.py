#!/usr/bin/python3
"""The deskew convention of LIGHTSHEET.md in numpy, independent of Tessera's code: the
reference its tests and bench/volume compare with.

  deskew_reference.py IN.raw OUT.raw K H W DTYPE ANGLE STEP PIXEL DIRECTION ROTATE FLIP

IN.raw holds K raw frames of H x W (C order, little-endian DTYPE); OUT.raw receives the
deskewed stack; its shape goes to stdout as "K Y X".
"""
import math
import sys

import numpy as np


def orient(frame, rotate, flip):
    turned = np.rot90(frame, -rotate)  # clockwise quarter turns
    return np.flipud(turned) if flip else turned


def deskew(raw, angle, step, pixel, direction, rotate=0, flip=False):
    d = np.stack([orient(f, rotate, flip) for f in raw])
    k_planes, y_rows, u_cols = d.shape
    s = step * math.cos(math.radians(angle)) / pixel
    if abs(s - round(s)) <= 1e-9:
        s = float(round(s))
    x_cols = u_cols + int(math.ceil((k_planes - 1) * s - 1e-9))
    out = np.zeros((k_planes, y_rows, x_cols), dtype=raw.dtype)
    x = np.arange(x_cols, dtype=np.float64)
    for k in range(k_planes):
        shift = (k if direction > 0 else k_planes - 1 - k) * s
        if abs(shift - round(shift)) <= 1e-9:
            shift = float(round(shift))
        q = x - shift
        inside = (q >= 0) & (q <= u_cols - 1)
        fl = np.floor(q)
        i0 = np.clip(fl, 0, u_cols - 1).astype(np.int64)
        i1 = np.minimum(i0 + 1, u_cols - 1)
        f = q - fl
        plane = d[k].astype(np.float64)
        v = plane[:, i0] * (1 - f) + plane[:, i1] * f
        out[k] = np.where(inside, np.floor(v + 0.5), 0).astype(raw.dtype)
    return out


def main():
    src, dst, k, h, w, dtype, angle, step, pixel, direction, rotate, flip = sys.argv[1:13]
    raw = np.fromfile(src, dtype=np.dtype(dtype).newbyteorder("<")).reshape(int(k), int(h), int(w))
    out = deskew(raw, float(angle), float(step), float(pixel), int(direction), int(rotate), flip == "1")
    out.astype(np.dtype(dtype).newbyteorder("<")).tofile(dst)
    print(*out.shape)


if __name__ == "__main__":
    main()
