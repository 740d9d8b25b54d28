"""Makes the golden files of test/preprocess-golden.test.ts with an independent pipeline (Pillow + NumPy).

Run with Debian's python3-pil and python3-numpy: /usr/bin/python3 test/golden/make-golden.py
It writes small PNG images and, per image, what the ImageNet preprocessing should produce: shorter side
resized to 256 (bilinear, antialiased), centre 224 crop, scaled to [0, 1], normalised with the ImageNet
mean and std, channels first. The 224 x 224 result is summarised as a 16 x 16 grid of block means per
channel (768 numbers), which is what the test compares.
"""
import json
import pathlib

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).parent
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float64)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float64)


def make_image(width, height, seed, gray=False):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.zeros((height, width, 3))
    for c in range(3):
        fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.28)
        out[..., c] = 128 + 90 * np.sin(fx * 6.28 * x / width + phase) * np.cos(fy * 6.28 * y / height)
    # A few hard-edged rectangles, so resampling differences would show.
    for _ in range(4):
        x0, y0 = rng.integers(0, width - 10), rng.integers(0, height - 10)
        out[y0 : y0 + height // 5, x0 : x0 + width // 5] = rng.integers(0, 256, size=3)
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    return img.convert("L") if gray else img


def preprocess(img):
    img = img.convert("RGB")
    w, h = img.size
    scale = 256 / min(w, h)
    rw, rh = max(224, int(w * scale + 0.5)), max(224, int(h * scale + 0.5))
    img = img.resize((rw, rh), Image.BILINEAR)
    left, top = (rw - 224) // 2, (rh - 224) // 2
    arr = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float64) / 255.0
    arr = (arr - MEAN) / STD
    grid = arr.reshape(16, 14, 16, 14, 3).mean(axis=(1, 3))  # 16 x 16 x 3
    return grid.transpose(2, 0, 1)  # channels first


cases = [("landscape", 520, 390, 1, False), ("portrait", 200, 300, 2, False), ("gray", 400, 400, 3, True)]
golden = []
for name, width, height, seed, gray in cases:
    img = make_image(width, height, seed, gray)
    img.save(HERE / f"{name}.png")
    golden.append({"file": f"{name}.png", "grid": np.round(preprocess(img), 5).flatten().tolist()})
(HERE / "preprocess.json").write_text(json.dumps(golden) + "\n")
print("wrote", len(golden), "cases")
