#!/usr/bin/python3
"""The peer of bench/deskew: tests/deskew_reference.py's numpy deskew on the same stack, timed.

  deskew_numpy.py IN.raw K H W ANGLE STEP PIXEL ROUNDS

Prints "seconds S cpu C" per round (deskew only, the file read before the clock starts).
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from deskew_reference import deskew  # noqa: E402


def main():
    src, k, h, w, angle, step, pixel, rounds = sys.argv[1:9]
    raw = np.fromfile(src, dtype="<u2").reshape(int(k), int(h), int(w))
    for _ in range(int(rounds)):
        t0, c0 = time.perf_counter(), time.process_time()
        deskew(raw, float(angle), float(step), float(pixel), 1)
        print(f"seconds {time.perf_counter() - t0:.6f} cpu {time.process_time() - c0:.6f}", flush=True)


if __name__ == "__main__":
    main()
