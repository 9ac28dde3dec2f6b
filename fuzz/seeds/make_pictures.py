#!/usr/bin/env python3
"""Writes the seeds of the `picture` fuzz target: one small synthetic picture (gradients
and noise, no one's photograph) in each format and colour type srgraph reads.

Usage: python fuzz/seeds/make_pictures.py   (needs Pillow and numpy; e.g. in a throw-away venv)
"""
import pathlib, struct, zlib

import numpy as np
from PIL import Image

out = pathlib.Path(__file__).parent / "picture"
out.mkdir(exist_ok=True)
rng = np.random.default_rng(7)


def pattern(h, w, c, peak=255):
    """A smooth gradient per channel with noise on it, so encoders have edges and texture."""
    y, x = np.mgrid[0:h, 0:w]
    planes = [((x * (k + 1) * 13 + y * (3 - k) * 11) % 256) for k in range(c)]
    a = np.stack(planes, -1).astype(np.float64) + rng.normal(0, 12, (h, w, c))
    return np.clip(a * peak / 255, 0, peak)


def png16(path, a):
    """A 16-bit PNG (grey, RGB or RGBA), written by hand: Pillow writes 16 bits for grey only."""
    h, w, c = a.shape
    colour = {1: 0, 3: 2, 4: 6}[c]
    rows = b"".join(b"\0" + a[i].astype(">u2").tobytes() for i in range(h))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
    path.write_bytes(png + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


u8 = lambda a: a.astype(np.uint8)
Image.fromarray(u8(pattern(12, 8, 2)), "LA").save(out / "grey-alpha8.png")
Image.fromarray(u8(pattern(24, 24, 1)[..., 0]), "L").save(out / "grey.jpg", quality=90)
png16(out / "grey16.png", pattern(12, 16, 1, 65535))
Image.fromarray(u8(pattern(16, 20, 1)[..., 0]), "L").save(out / "grey8.png")
Image.fromarray(u8(pattern(11, 13, 3)), "RGB").save(out / "interlaced.png", interlace=1)
Image.fromarray(u8(pattern(24, 24, 3)), "RGB").quantize(16).save(out / "palette.png")
Image.fromarray(u8(pattern(10, 12, 3)), "RGB").quantize(8).save(out / "palette8.bmp")
Image.fromarray(u8(pattern(24, 32, 3)), "RGB").save(out / "progressive.jpg", quality=90, progressive=True)
Image.fromarray(u8(pattern(32, 32, 3)), "RGB").save(out / "rgb.jpg", quality=90, subsampling=0)
png16(out / "rgb16.png", pattern(10, 12, 3, 65535))
Image.fromarray(u8(pattern(10, 16, 3)), "RGB").save(out / "rgb24.bmp")
Image.fromarray(u8(pattern(24, 24, 3)), "RGB").save(out / "rgb8.png")
png16(out / "rgba16.png", pattern(8, 10, 4, 65535))
Image.fromarray(u8(pattern(9, 10, 4)), "RGBA").save(out / "rgba32.bmp")
Image.fromarray(u8(pattern(16, 20, 4)), "RGBA").save(out / "rgba8.png")
Image.fromarray(u8(pattern(32, 32, 3)), "RGB").save(out / "subsampled420.jpg", quality=90, subsampling=2)
Image.fromarray(pattern(12, 14, 1, 65535)[..., 0].astype(np.uint16)).save(out / "grey16.tif")
Image.fromarray(u8(pattern(16, 20, 1)[..., 0]), "L").save(out / "grey8-packbits.tif", compression="packbits")
Image.fromarray(u8(pattern(16, 20, 3)), "RGB").save(out / "rgb8-lzw.tif", compression="tiff_lzw")
Image.fromarray(u8(pattern(12, 10, 4)), "RGBA").save(out / "rgba8-deflate.tif", compression="tiff_adobe_deflate")
print("wrote", len(list(out.iterdir())), "seeds in", out)
