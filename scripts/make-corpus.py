#!/usr/bin/env python3
"""Makes a corpus of real-world-looking digit pictures for the normalisation test.

Two sources, both transformed the way pictures reach a web service:
  * typed digits, drawn with every TrueType/OpenType font found under the given font folders;
  * handwritten digits, MNIST t10k images blown up to photo size.
Each picture gets random colours (dark ink on light paper, light on dark, coloured pens), a size
from 40 to 600 px, an off-centre position, a rotation, and sometimes transparency, uneven
lighting, blur, Gaussian or salt-and-pepper noise, and JPEG artefacts; it is written as PNG, JPEG,
WebP, BMP or GIF. The label is in `labels.csv` (file,label,source,recipe).

Deterministic for a given --seed. Needs Pillow.
Usage: make-corpus.py --out DIR --mnist-dir DIR [--fonts DIR ...] [--per-source N] [--seed S]
"""

import argparse
import csv
import gzip
import random
import struct
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Fonts of symbols or dingbats, not digits.
SKIPPED_FONTS = ("MathTeXGyre", "StandardSymbols", "D050000L", "Dingbats")


def read_idx(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return [data[16 + i * rows * cols: 16 + (i + 1) * rows * cols] for i in range(count)], (cols, rows)
    if magic == 2049:
        return list(data[8: 8 + count]), None
    raise SystemExit(f"{path}: not an IDX image or label file (magic {magic})")


def find_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        path = folder / name
        if path.exists():
            return path
    raise SystemExit(f"{folder} has no {stem}[.gz]")


def find_fonts(folders):
    fonts = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() in (".ttf", ".otf") and not any(s in path.name for s in SKIPPED_FONTS):
                fonts.append(path)
    return fonts


def colours(rng):
    """(ink, paper) as RGB; mostly dark on light, as on paper and screens."""
    style = rng.random()
    if style < 0.55:  # pen or pencil on paper
        ink = tuple(rng.randint(0, 90) for _ in range(3))
        paper = tuple(rng.randint(190, 255) for _ in range(3))
    elif style < 0.75:  # coloured pen
        ink = rng.choice([(20, 40, 160), (170, 20, 20), (10, 110, 40), (90, 30, 120)])
        paper = tuple(rng.randint(215, 255) for _ in range(3))
    else:  # chalk on a board, or a dark-mode screen
        ink = tuple(rng.randint(200, 255) for _ in range(3))
        paper = tuple(rng.randint(0, 70) for _ in range(3))
    return ink, paper


def typed_digit_mask(rng, font_path, digit):
    """The digit drawn in white on black, cropped to a margin around it."""
    size = rng.randint(40, 220)
    font = ImageFont.truetype(str(font_path), size)
    stroke = rng.choice([0, 0, 0, 1, max(1, size // 30)])
    canvas = Image.new("L", (size * 3, size * 3), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), str(digit), fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    box = canvas.getbbox()
    return canvas.crop(box) if box else canvas


def handwritten_mask(rng, pixels, shape):
    """An MNIST digit (white on black) blown up to photo size."""
    image = Image.frombytes("L", shape, pixels)
    scale = rng.uniform(2.0, 14.0)
    size = (round(shape[0] * scale), round(shape[1] * scale))
    image = image.resize(size, rng.choice([Image.BICUBIC, Image.BILINEAR, Image.LANCZOS]))
    box = image.getbbox()
    return image.crop(box) if box else image


def compose(rng, mask, recipe):
    """Places the ink mask on a canvas and applies the transformations a picture meets."""
    angle = rng.uniform(-15, 15)
    mask = mask.rotate(angle, resample=Image.BICUBIC, expand=True)
    recipe.append(f"rotate {angle:.0f}")
    width, height = mask.size
    longer = max(width, height)
    margin = lambda: rng.randint(longer // 10, longer // 10 + longer * 2 // 3)
    left, top, right, bottom = margin(), margin(), margin(), margin()
    canvas_size = (width + left + right, height + top + bottom)
    cap = rng.randint(40, 600)
    ratio = cap / max(canvas_size)
    full = Image.new("L", canvas_size, 0)
    full.paste(mask, (left, top))
    full = full.resize((max(1, round(canvas_size[0] * ratio)), max(1, round(canvas_size[1] * ratio))), Image.LANCZOS)
    recipe.append(f"{full.size[0]}x{full.size[1]}")

    ink, paper = colours(rng)
    recipe.append(f"ink {ink} on {paper}")
    if rng.random() < 0.2:
        image = Image.new("RGBA", full.size, paper + (0,))
        image.paste(Image.new("RGBA", full.size, ink + (255,)), (0, 0), full)
        recipe.append("transparent background")
        return image
    image = Image.composite(Image.new("RGB", full.size, ink), Image.new("RGB", full.size, paper), full)
    if rng.random() < 0.2:
        side = 2 * max(full.size)
        shade = Image.linear_gradient("L").resize((side, side)).rotate(rng.uniform(0, 360), resample=Image.BILINEAR)
        shade = shade.crop(((side - full.size[0]) // 2, (side - full.size[1]) // 2,
                            (side + full.size[0]) // 2, (side + full.size[1]) // 2)).resize(full.size)
        dark = Image.new("RGB", full.size, tuple(max(0, c - 70) for c in paper))
        image = Image.composite(dark, image, shade.point(lambda v: v // 2))
        recipe.append("uneven light")
    if rng.random() < 0.25:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
        recipe.append("blur")
    noise = rng.random()
    if noise < 0.25:
        sigma = rng.uniform(5, 25)
        grain = Image.effect_noise(image.size, sigma).convert("RGB")
        image = Image.blend(image, grain, 0.15)
        recipe.append(f"gaussian noise {sigma:.0f}")
    elif noise < 0.35:
        pixels = image.load()
        for _ in range(image.size[0] * image.size[1] // 200):
            xy = (rng.randrange(image.size[0]), rng.randrange(image.size[1]))
            pixels[xy] = rng.choice([(0, 0, 0), (255, 255, 255)])
        recipe.append("salt and pepper")
    return image


def save(rng, image, stem, out, recipe):
    choice = rng.random()
    if choice < 0.4 and image.mode == "RGB":
        quality = rng.randint(25, 90)
        name = f"{stem}.jpg"
        image.save(out / name, quality=quality)
        recipe.append(f"jpeg q{quality}")
    elif choice < 0.5:
        name = f"{stem}.webp"
        image.save(out / name, lossless=True)
    elif choice < 0.6 and image.mode == "RGB":
        name = f"{stem}.bmp"
        image.save(out / name)
    elif choice < 0.7:
        name = f"{stem}.gif"
        image.save(out / name)
    else:
        name = f"{stem}.png"
        image.save(out / name)
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mnist-dir", type=Path, required=True, help="folder with t10k-images-idx3-ubyte[.gz]")
    parser.add_argument("--fonts", type=Path, nargs="*", default=[Path("/usr/share/fonts")])
    parser.add_argument("--per-source", type=int, default=400, help="pictures from each of the two sources")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    fonts = find_fonts(args.fonts)
    if len(fonts) < 5:
        raise SystemExit(f"only {len(fonts)} fonts under {args.fonts}: install e.g. fonts-dejavu-core fonts-liberation2")
    images, shape = read_idx(find_idx(args.mnist_dir, "t10k-images-idx3-ubyte"))
    labels, _ = read_idx(find_idx(args.mnist_dir, "t10k-labels-idx1-ubyte"))
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    for index in range(args.per_source):
        digit = index % 10
        font = fonts[(index // 10) % len(fonts)]
        recipe = [f"font {font.stem}"]
        image = compose(rng, typed_digit_mask(rng, font, digit), recipe)
        name = save(rng, image, f"typed-{index:04d}-{digit}", args.out, recipe)
        rows.append((name, digit, "typed", "; ".join(recipe)))
    for index, sample in enumerate(rng.sample(range(len(images)), args.per_source)):
        digit = labels[sample]
        recipe = [f"t10k #{sample}"]
        image = compose(rng, handwritten_mask(rng, images[sample], shape), recipe)
        name = save(rng, image, f"handwritten-{index:04d}-{digit}", args.out, recipe)
        rows.append((name, digit, "handwritten", "; ".join(recipe)))

    with open(args.out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("file", "label", "source", "recipe"))
        writer.writerows(rows)
    print(f"make-corpus: {len(rows)} pictures ({len(fonts)} fonts) in {args.out}")


if __name__ == "__main__":
    main()
