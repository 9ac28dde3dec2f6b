#!/usr/bin/env python3
"""MATLAB's imresize(img, scale, 'bicubic') of a uint16 image in NumPy, written from
imresize.m independently of srgraph (tests/it/deep_pictures.rs compares the two):

    if scale < 1 (antialiasing): h = @(x) scale * cubic(scale * x); kernel_width = 4 / scale
    u = (1:out)' / scale + 0.5 * (1 - 1 / scale);  left = floor(u - kernel_width / 2)
    indices = left + (0:P-1), P = ceil(kernel_width) + 2;  weights = h(u - indices) ./ sum
    symmetric padding: aux = [1:n, n:-1:1];  indices = aux(mod(indices - 1, 2n) + 1)
    height first, then width; each pass rounds to uint16 (half away from zero, saturating)

The weights are summed, and each output accumulated, tap by tap in order (as a sequential
loop does), so that a tie at .5 cannot come out differently for want of the same order.

Usage: bicubic_u16.py IN.u16 H W C down|up SCALE OUT.u16
  IN.u16: H x W x C values, row-major, little-endian; down: H / SCALE x W / SCALE (after
  modcrop), up: H * SCALE x W * SCALE; OUT.u16 is written the same way.
"""
import math
import sys

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = 1.5 * ax3 - 2.5 * ax2 + 1.0
    far = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1.0, near, np.where(ax <= 2.0, far, 0.0))


def contributions(n_in: int, n_out: int, scale: float):
    width, widen = (4.0 / scale, scale) if scale < 1.0 else (4.0, 1.0)
    taps = math.ceil(width) + 2
    u = np.arange(1, n_out + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = widen * cubic(widen * (u[:, None] - indices))
    total = weights[:, 0].copy()
    for k in range(1, taps):
        total += weights[:, k]
    weights = weights / total[:, None]
    aux = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    return aux[np.mod(indices.astype(np.int64) - 1, 2 * n_in)], weights


def to_uint16(x: np.ndarray) -> np.ndarray:
    """MATLAB's uint16(): round half away from zero (exactly: whole part plus the fraction's
    verdict), then saturate."""
    whole = np.trunc(x)
    rounded = whole + np.sign(x) * (np.abs(x - whole) >= 0.5)
    return np.clip(rounded, 0, 65535)


def resize_rows(img: np.ndarray, n_out: int, scale: float) -> np.ndarray:
    """Resize axis 0 of a float64 H x W x C array, then round to uint16 values."""
    idx, w = contributions(img.shape[0], n_out, scale)
    acc = np.zeros((n_out,) + img.shape[1:], dtype=np.float64)
    for k in range(idx.shape[1]):
        acc += w[:, k, None, None] * img[idx[:, k]]
    return to_uint16(acc)


def main() -> int:
    src, h, w, c, mode, s, dst = sys.argv[1:8]
    h, w, c, s = int(h), int(w), int(c), int(s)
    img = np.fromfile(src, dtype="<u2").reshape(h, w, c).astype(np.float64)
    if mode == "down":
        img = img[: h - h % s, : w - w % s]
        out_h, out_w, scale = img.shape[0] // s, img.shape[1] // s, 1.0 / s
    else:
        out_h, out_w, scale = h * s, w * s, float(s)
    rows = resize_rows(img, out_h, scale)
    cols = resize_rows(rows.transpose(1, 0, 2), out_w, scale).transpose(1, 0, 2)
    np.ascontiguousarray(cols).astype("<u2").tofile(dst)
    print(f"bicubic {mode} x{s}: {w}x{h} -> {out_w}x{out_h}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
