#!/usr/bin/env python3
"""Real 16-bit pictures for the tests: the CT and MR slices that pydicom ships inside its
wheel (pydicom/data/test_files, MIT licence; none is downloaded on first use), written as
16-bit grey PNG and TIFF by hand (zlib and struct, so that srgraph's decoders are checked
against files it did not write).

    CT_small.dcm          128 x 128, 16 bits stored, values 128..2191
    MR_small.dcm           64 x 64,  16 bits stored, values 127..2145
    examples_overlay.dcm  484 x 300, 12 bits stored, values 0..1123

Each slice is stretched linearly to the whole 16-bit range, round((v - min) * 65535 /
(max - min)), so that its values use all 16 bits (and an 8-bit reduction would lose them).

Usage: dicom_pictures.py OUTDIR
  writes OUTDIR/png/<name>.png, OUTDIR/tif/<name>.tif and OUTDIR/raw/<name>.u16 (the values,
  row-major, little-endian), and prints one line per picture: name width height min max.
"""
import os
import struct
import sys
import zlib

import numpy as np

try:
    import pydicom
except ImportError:
    sys.exit("pydicom is missing from this Python: run tools/setup/setup-python.sh (tools/setup/requirements.txt)")

FILES = {"ct_small": "CT_small.dcm", "mr_small": "MR_small.dcm", "overlay": "examples_overlay.dcm"}


def png16(path: str, a: np.ndarray) -> None:
    """A 16-bit grey PNG: IHDR (depth 16, colour type 0), one zlib IDAT of filter-0 rows, IEND."""
    h, w = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def tiff16(path: str, a: np.ndarray) -> None:
    """A baseline little-endian TIFF: one uncompressed strip of 16-bit grey (BlackIsZero)."""
    h, w = a.shape
    short, long_ = 3, 4
    entries = [
        (256, long_, w),  # ImageWidth
        (257, long_, h),  # ImageLength
        (258, short, 16),  # BitsPerSample
        (259, short, 1),  # Compression: none
        (262, short, 1),  # PhotometricInterpretation: BlackIsZero
        (273, long_, 0),  # StripOffsets, filled in below
        (277, short, 1),  # SamplesPerPixel
        (278, long_, h),  # RowsPerStrip
        (279, long_, h * w * 2),  # StripByteCounts
    ]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    entries[5] = (273, long_, data_offset)
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", t, k, 1, v) for t, k, v in entries)
    with open(path, "wb") as f:
        f.write(b"II" + struct.pack("<HI", 42, 8) + ifd + struct.pack("<I", 0) + a.astype("<u2").tobytes())


def main() -> int:
    out = sys.argv[1]
    folder = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
    for sub in ("png", "tif", "raw"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for name, file in FILES.items():
        v = pydicom.dcmread(os.path.join(folder, file)).pixel_array.astype(np.float64)
        lo, hi = v.min(), v.max()
        a = np.round((v - lo) * 65535.0 / (hi - lo)).astype(np.uint16)
        png16(os.path.join(out, "png", name + ".png"), a)
        tiff16(os.path.join(out, "tif", name + ".tif"), a)
        a.astype("<u2").tofile(os.path.join(out, "raw", name + ".u16"))
        print(name, a.shape[1], a.shape[0], int(a.min()), int(a.max()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
