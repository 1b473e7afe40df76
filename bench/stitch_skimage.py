"""The peer of bench/stitch: scikit-image's phase_cross_correlation (as ASHLAR registers
tiles) on the same overlapping pairs of the same synthetic mosaic.

    python3 bench/stitch_skimage.py DIR [--limit N]

DIR holds tiles.u16 (T x S x S uint16) and pairs.json from tessera_bench_stitch. Each pair's
nominal overlap (the stage's) is cropped from both tiles, as the same shape, and registered
with phase_cross_correlation(upsample_factor=10) on one thread. Prints one key=value line.
"""
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from skimage.registration import phase_cross_correlation  # noqa: E402


def main():
    folder = sys.argv[1]
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    meta = json.load(open(os.path.join(folder, "pairs.json")))
    size, count = meta["size"], meta["tiles"]
    tiles = np.memmap(os.path.join(folder, "tiles.u16"), dtype="<u2", mode="r", shape=(count, size, size))
    pairs = meta["pairs"][:limit] if limit else meta["pairs"]
    errors, times = [], []
    for p in pairs:
        ndx, ndy = (int(round(v)) for v in p["nominal"])
        x0, x1 = max(0, ndx), min(size, ndx + size)
        y0, y1 = max(0, ndy), min(size, ndy + size)
        start = time.perf_counter()
        a = np.array(tiles[p["a"], y0:y1, x0:x1], dtype=np.float32)
        b = np.array(tiles[p["b"], y0 - ndy:y1 - ndy, x0 - ndx:x1 - ndx], dtype=np.float32)
        shift, _, _ = phase_cross_correlation(a, b, upsample_factor=10)
        times.append(time.perf_counter() - start)
        dx, dy = ndx + shift[1], ndy + shift[0]
        errors.append(math.hypot(dx - p["truth"][0], dy - p["truth"][1]))
    errors.sort()
    print(f"skimage pairs={len(pairs)} register_ms_per_pair={1000 * statistics.median(times):.2f} "
          f"register_ms_per_pair_mean={1000 * statistics.mean(times):.2f} "
          f"register_err_median_px={statistics.median(errors):.3f} register_err_max_px={errors[-1]:.3f} "
          f"register_wrong={sum(e > 1.0 for e in errors)}")


if __name__ == "__main__":
    main()
