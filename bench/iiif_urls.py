#!/usr/bin/python3
"""bench/iiif_urls.py: the IIIF tile URLs of bench/iiif, and their check.

    iiif_urls.py urls INFO.json SEED > urls.txt
        Every tile of every zoom level of the image that INFO.json (IIIF 3, the gateway's)
        describes, as OpenSeadragon 6 (web/'s viewer) asks for them from an IIIF 3 level-2
        server: "{x},{y},{w},{h}/{sw},{sh}/0/default.jpg", or "full/{sw},{sh}/0/default.jpg"
        where the whole level fits in one tile; one per line, shuffled with SEED. Both servers
        get the same lines after their own base URL. The first line of stderr says how many
        per level.

    iiif_urls.py check BASE urls.txt
        GETs BASE + every line once over one keep-alive connection (this is also the warm-up
        of the server before it is measured); any answer but 200 image/jpeg of the asked size
        is printed with its URL, status and the start of its body, and the exit status is 1.
        Prints one line: "checked=N ok=N bytes_mean=B seconds=S".

    iiif_urls.py compare BASE_A BASE_B urls.txt
        Fetches the first tile of each level from both and compares the decoded pictures
        (libturbojpeg through ctypes, as grey): prints "tiles=N mean_abs_diff=D p999_abs_diff=M
        mean_grey=G" over those tiles, in 8-bit grey levels.
"""
import ctypes
import http.client
import os
import random
import sys
import time
import urllib.parse
import json

import numpy as np

# A secured gateway's token (bench/iiif exports the stack's), sent with every request.
HEADERS = {"Authorization": f"Bearer {os.environ['TESSERA_TOKEN']}"} if os.environ.get("TESSERA_TOKEN") else {}


def tile_urls(info):
    width, height = info["width"], info["height"]
    tiles = info["tiles"][0]
    tw, th = tiles["width"], tiles.get("height", tiles["width"])
    per_level = []
    for s in tiles["scaleFactors"]:
        lw, lh = -(-width // s), -(-height // s)  # OpenSeadragon: ceil(width * scale)
        urls = []
        if lw < tw and lh < th:
            size = "max" if (lw == width and lh == height) else f"{lw},{lh}"
            urls.append(f"full/{size}/0/default.jpg")
        else:
            rw, rh = tw * s, th * s
            for y in range(-(-lh // th)):
                for x in range(-(-lw // tw)):
                    rx, ry = x * rw, y * rh
                    w, h = min(rw, width - rx), min(rh, height - ry)
                    sw, sh = min(tw, lw - x * tw), min(th, lh - y * th)
                    region = "full" if (w == width and h == height) else f"{rx},{ry},{w},{h}"
                    size = "max" if (sw == width and sh == height) else f"{sw},{sh}"
                    urls.append(f"{region}/{size}/0/default.jpg")
        per_level.append((s, urls))
    return per_level


class Http:
    """One keep-alive connection to BASE's host; get(suffix) -> (status, content_type, body)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = base[len(f"{u.scheme}://{u.netloc}"):]
        self.conn = None

    def get(self, suffix):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request("GET", self.prefix + suffix, headers=HEADERS)
                r = self.conn.getresponse()
                return r.status, r.getheader("Content-Type", ""), r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


def expected_size(suffix, info_w, info_h):
    size = suffix.split("/")[1]
    if size == "max":
        return info_w, info_h
    w, h = size.split(",")
    return int(w), int(h)


class TurboJpeg:
    def __init__(self):
        self.lib = ctypes.CDLL("libturbojpeg.so.0")
        self.lib.tjInitDecompress.restype = ctypes.c_void_p
        self.handle = ctypes.c_void_p(self.lib.tjInitDecompress())

    def size(self, data):
        w, h, sub, cs = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        rc = self.lib.tjDecompressHeader3(self.handle, data, ctypes.c_ulong(len(data)), ctypes.byref(w),
                                          ctypes.byref(h), ctypes.byref(sub), ctypes.byref(cs))
        if rc != 0:
            raise ValueError("not a JPEG")
        return w.value, h.value

    def gray(self, data):
        w, h = self.size(data)
        out = np.empty((h, w), np.uint8)
        TJPF_GRAY = 6
        rc = self.lib.tjDecompress2(self.handle, data, ctypes.c_ulong(len(data)), out.ctypes.data_as(ctypes.c_void_p),
                                    w, 0, h, TJPF_GRAY, 0)
        if rc != 0:
            raise ValueError("JPEG decode failed")
        return out


def read_lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def cmd_urls(info_path, seed):
    with open(info_path) as f:
        info = json.load(f)
    per_level = tile_urls(info)
    urls = [u for _, level in per_level for u in level]
    random.Random(int(seed)).shuffle(urls)
    print(f"{len(urls)} tile URLs: " + ", ".join(f"{len(u)} at 1/{s}" for s, u in per_level), file=sys.stderr)
    sys.stdout.write("".join(u + "\n" for u in urls))


def cmd_check(base, urls_path):
    urls = read_lines(urls_path)
    tj = TurboJpeg()
    conn = Http(base)
    bad = 0
    total = 0
    t0 = time.monotonic()
    # The size the URL asks for is checked against the JPEG's own header.
    for suffix in urls:
        status, ctype, body = conn.get(suffix)
        problem = None
        if status != 200:
            problem = f"status {status}"
        elif not ctype.startswith("image/jpeg"):
            problem = f"Content-Type {ctype!r}"
        else:
            try:
                got = tj.size(body)
                size = suffix.split("/")[1]
                if size != "max":
                    want = tuple(int(v) for v in size.split(","))
                    if got != want:
                        problem = f"a {got[0]}x{got[1]} JPEG for size {size}"
            except ValueError as e:
                problem = str(e)
        if problem:
            bad += 1
            if bad <= 10:
                print(f"FAIL {base}{suffix}: {problem}: {body[:300]!r}", file=sys.stderr)
        total += len(body)
    seconds = time.monotonic() - t0
    print(f"checked={len(urls)} ok={len(urls) - bad} bytes_mean={total // max(1, len(urls))} seconds={seconds:.1f}")
    return 1 if bad else 0


def cmd_compare(base_a, base_b, urls_path):
    urls = read_lines(urls_path)
    firsts = {}
    for u in urls:  # each level's first tile: the top-left one, or the whole level
        size = u.split("/")[1]
        region = u.split("/")[0]
        if region == "full" or region.startswith("0,0,"):
            firsts[size if region == "full" else region] = u
    tj = TurboJpeg()
    a, b = Http(base_a), Http(base_b)
    diffs, worst, grey = [], 0, []
    for u in sorted(firsts.values()):
        sa, _, ja = a.get(u)
        sb, _, jb = b.get(u)
        if sa != 200 or sb != 200:
            print(f"compare: {u}: status {sa} and {sb}", file=sys.stderr)
            return 1
        ga, gb = tj.gray(ja).astype(np.int16), tj.gray(jb).astype(np.int16)
        if ga.shape != gb.shape:
            print(f"compare: {u}: {ga.shape} and {gb.shape}", file=sys.stderr)
            return 1
        d = np.abs(ga - gb)
        diffs.append(float(d.mean()))
        grey.append(float(ga.mean()))
        worst = max(worst, int(np.percentile(d, 99.9)))
    print(f"tiles={len(diffs)} mean_abs_diff={np.mean(diffs):.2f} p999_abs_diff={worst} "
          f"mean_grey={np.mean(grey):.1f}")
    return 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "urls" and len(sys.argv) == 4:
        return cmd_urls(sys.argv[2], sys.argv[3])
    if len(sys.argv) >= 2 and sys.argv[1] == "check" and len(sys.argv) == 4:
        return cmd_check(sys.argv[2], sys.argv[3])
    if len(sys.argv) >= 2 and sys.argv[1] == "compare" and len(sys.argv) == 5:
        return cmd_compare(sys.argv[2], sys.argv[3], sys.argv[4])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
