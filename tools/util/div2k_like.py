#!/usr/bin/env python3
"""A DIV2K-layout folder of DIV2K-sized pictures, for measuring srgraph at DIV2K scale.

DIV2K itself (800 + 100 pictures of about 2040x1356) cannot be fetched here, so this
makes `OUT/DIV2K_train_HR/0001.png ...`: real photographs (BSD200, 481x321) enlarged
to 2040x1356 with Pillow's bicubic filter, N of them (the 200 pictures are reused, each
time mirrored or turned, past 200). Pixel content matters little for memory and speed;
size and count do.

    python3 -m venv /tmp/pilvenv && /tmp/pilvenv/bin/pip install pillow
    /tmp/pilvenv/bin/python tools/util/div2k_like.py --data ../shared/data --count 100 --out /tmp/div2k-100
"""
import argparse
import pathlib

from PIL import Image, ImageOps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="the shared data folder (BSD200 inside)")
    ap.add_argument("--count", type=int, default=100, help="pictures to write")
    ap.add_argument("--out", required=True, help="the folder to make (DIV2K_train_HR inside)")
    a = ap.parse_args()
    sources = sorted((pathlib.Path(a.data) / "BSD200").glob("*.png"))
    assert sources, f"no BSD200 pictures under {a.data}"
    hr = pathlib.Path(a.out) / "DIV2K_train_HR"
    hr.mkdir(parents=True, exist_ok=True)
    for i in range(a.count):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        if img.width < img.height:
            img = img.transpose(Image.Transpose.ROTATE_90)
        variant = i // len(sources)
        if variant % 2:
            img = ImageOps.mirror(img)
        if variant // 2 % 2:
            img = img.transpose(Image.Transpose.ROTATE_180)
        img = img.resize((2040, 1356), Image.Resampling.BICUBIC)
        img.save(hr / f"{i + 1:04d}.png", compress_level=1)
    print(f"wrote {a.count} pictures of 2040x1356 to {hr}")


if __name__ == "__main__":
    main()
