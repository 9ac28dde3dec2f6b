#!/usr/bin/env python3
"""RDN's BD degradation in NumPy, as its MATLAB preparation code writes it:

    kernel  = fspecial('gaussian', 7, 1.6);
    blur_HR = imfilter(ImHR, kernel, 'replicate');   % uint8: rounded half away from zero
    ImLR    = imresize(blur_HR, 1/scale, 'nearest');  % no antialiasing: pixel floor(s/2) of each block

written independently of srgraph (tests/it/degradation.rs compares the two).

Usage: degradation_bd.py HR.bin H W SCALE LR.bin
  HR.bin: H x W x 3 bytes (a modcropped picture, row-major RGB); LR.bin is written the same way.
"""
import sys

import numpy as np


def fspecial_gaussian(side: int, sigma: float) -> np.ndarray:
    r = (side - 1) / 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def imfilter_replicate(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Correlation (imfilter's default) with the edge repeated, in float64, then uint8."""
    r = k.shape[0] // 2
    padded = np.pad(img.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    out = np.zeros(img.shape, dtype=np.float64)
    for a in range(k.shape[0]):
        for b in range(k.shape[1]):
            out += k[a, b] * padded[a : a + h, b : b + w]
    # MATLAB's uint8(): round half away from zero, saturate.
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def main() -> int:
    src, h, w, s, dst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    hr = np.fromfile(src, dtype=np.uint8).reshape(h, w, 3)
    blurred = imfilter_replicate(hr, fspecial_gaussian(7, 1.6))
    lr = blurred[s // 2 :: s, s // 2 :: s]
    np.ascontiguousarray(lr).tofile(dst)
    print(f"BD x{s}: {w}x{h} -> {lr.shape[1]}x{lr.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
