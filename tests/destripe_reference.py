#!/usr/bin/python3
"""pystripe's two destriping methods in numpy, PyWavelets and SciPy, independent of Tessera's code:
the reference its tests and bench/corrections compare with.

  destripe_reference.py IN.raw OUT.raw H W wavelet SIGMA1 SIGMA2 LEVEL WAVELET THRESHOLD CROSSOVER [ROUNDS]
  destripe_reference.py IN.raw OUT.raw H W lightsheet ARTIFACT_LENGTH BACKGROUND_WINDOW PERCENTILE VS_BACKGROUND [ROUNDS]

IN.raw holds one H x W uint16 image (C order, little-endian); OUT.raw receives the destriped
image, uint16. With ROUNDS the image is destriped that many times and the median seconds of a
round goes to stdout as "seconds S".

The wavelet method is pystripe 0.2's `filter_streaks` (log(1 + I), a 2-D wavelet decomposition
in PyWavelets' symmetric mode, a Gaussian notch `1 - exp(-k^2 / 2 s^2)` over the index k of
scipy.fftpack's packed real FFT of each horizontal detail band along x, with s the band's
height times sigma / the image's height, back, exp(.) - 1; sigma1 for the foreground, sigma2
for the background, blended by a smoothed sigmoid around the threshold (Otsu's by default)
when they differ). The lightsheet method is its `correct_lightsheet` (after ClearMap): a
percentile along x over ARTIFACT_LENGTH pixels, against LIGHTSHEET_VS_BACKGROUND times the
percentile over a BACKGROUND_WINDOW square (every second pixel, on a 25-pixel grid, linearly
interpolated), the lesser of the two subtracted. pystripe itself no longer runs with Debian 12's
numpy (np.float is gone), hence this transcription of its algorithm.
"""
import sys
import time

import numpy as np
import pywt
import scipy.fftpack as fftpack
import scipy.ndimage as ndi
from skimage.filters import threshold_otsu


def filter_subband(img, sigma, level, wavelet):
    img_log = np.log(1 + img)
    coeffs = pywt.wavedec2(img_log, wavelet, mode='symmetric', level=None if level == 0 else level, axes=(-2, -1))
    width_frac = sigma / img.shape[0]
    filtered = [coeffs[0]]
    for ch, cv, cd in coeffs[1:]:
        s = ch.shape[0] * width_frac
        fch = fftpack.rfft(ch, axis=-1)
        k = np.arange(fch.shape[-1])
        g = 1 - np.exp(-k ** 2 / (2 * s ** 2))
        filtered.append((fftpack.irfft(fch * g, axis=-1), cv, cd))
    return np.exp(pywt.waverec2(filtered, wavelet, mode='symmetric', axes=(-2, -1))) - 1


def foreground_fraction(img, center, crossover):
    f = 1 / (1 + np.exp(-(img - center) / crossover))
    return ndi.gaussian_filter(f, sigma=1)


def filter_streaks(img, sigma1, sigma2, level=0, wavelet='db3', crossover=10, threshold=-1):
    if threshold == -1:
        threshold = threshold_otsu(img)
    img = np.array(img, dtype=np.float64)
    pady, padx = [n % 2 for n in img.shape]
    if pady or padx:
        img = np.pad(img, ((0, pady), (0, padx)), mode='edge')
    if sigma1 > 0 and sigma2 > 0 and sigma1 == sigma2:
        fimg = filter_subband(img, sigma1, level, wavelet)
    elif sigma1 > 0 and sigma2 > 0:
        background = filter_subband(np.clip(img, None, threshold), sigma2, level, wavelet)
        foreground = filter_subband(np.clip(img, threshold, None), sigma1, level, wavelet)
        f = foreground_fraction(img, threshold, crossover)
        fimg = foreground * f + background * (1 - f)
    elif sigma1 > 0:
        foreground = filter_subband(np.clip(img, threshold, None), sigma1, level, wavelet)
        f = foreground_fraction(img, threshold, crossover)
        fimg = foreground * f + img * (1 - f)
    elif sigma2 > 0:
        background = filter_subband(np.clip(img, None, threshold), sigma2, level, wavelet)
        f = foreground_fraction(img, threshold, crossover)
        fimg = img * f + background * (1 - f)
    else:
        fimg = img
    np.clip(fimg, 0, 2 ** 16 - 1, out=fimg)
    fimg = fimg.astype(np.uint16)
    if padx:
        fimg = fimg[:, :-padx]
    if pady:
        fimg = fimg[:-pady]
    return fimg


def local_percentile(source, percentile, selem, spacing=None, step=None, dtype=None):
    """ClearMap's apply_local_function with a percentile, interpolate=1, no mask."""
    spacing = selem if spacing is None else spacing
    step = (None,) * source.ndim if step is None else step
    shape = source.shape
    n_centers = tuple(s // h for s, h in zip(shape, spacing))
    left = tuple((s - (n - 1) * h) // 2 for s, n, h in zip(shape, n_centers, spacing))
    axes = [range(l, s, h) for l, s, h in zip(left, shape, spacing)]
    results = np.zeros(n_centers, dtype=source.dtype if dtype is None else dtype)
    lo = tuple(h // 2 for h in selem)
    hi = tuple(h - l for h, l in zip(selem, lo))
    for index in np.ndindex(*n_centers):
        center = [axes[d][i] for d, i in enumerate(index)]
        sl = tuple(slice(max(0, c - l), min(c + r, s), d) for c, l, r, s, d in zip(center, lo, hi, shape, step))
        data = source[sl].flatten()
        results[index] = np.percentile(data, 100 * percentile) if len(data) else 0
    zoom = tuple(float(s) / float(r) for s, r in zip(shape, results.shape))
    return ndi.zoom(results, zoom=zoom, order=1)


def correct_lightsheet(img, artifact_length=150, background_window=200, percentile=0.25, vs_background=2.0):
    source = img.reshape(img.shape[0], img.shape[1], 1)
    l = local_percentile(source, percentile, selem=(1, artifact_length, 1))
    b = local_percentile(source, percentile, selem=(background_window, background_window, 1), spacing=(25, 25, 1),
                         step=(2, 2, 1), dtype=np.float32)
    lb = np.minimum(l, vs_background * b)
    c = source - np.minimum(source, lb)
    return c.reshape(img.shape).astype(np.uint16)


def main():
    src, dst, h, w, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    img = np.fromfile(src, dtype='<u2').reshape(h, w)
    if method == 'wavelet':
        s1, s2, level, wavelet, threshold, crossover = sys.argv[6:12]
        run = lambda: filter_streaks(img, float(s1), float(s2), int(level), wavelet, float(crossover), float(threshold))
        rest = sys.argv[12:]
    else:
        length, window, pct, vs = sys.argv[6:10]
        run = lambda: correct_lightsheet(img, int(length), int(window), float(pct), float(vs))
        rest = sys.argv[10:]
    out = run()
    if rest:
        times = []
        for _ in range(int(rest[0])):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        print('seconds', float(np.median(times)))
    out.astype('<u2').tofile(dst)


if __name__ == '__main__':
    main()
