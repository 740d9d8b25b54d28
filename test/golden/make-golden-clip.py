"""Makes the CLIP preprocessing goldens of test/clip-preprocess.test.ts with an independent pipeline: OpenAI's
own transform (clip/clip.py: torchvision Resize(224, bicubic) on a Pillow image, CenterCrop(224), then
convert("RGB"), ToTensor, Normalize) written out with Pillow + NumPy.

Run with Debian's python3-pil and python3-numpy: /usr/bin/python3 test/golden/make-golden-clip.py
It writes clip-alpha.png (RGBA: an opaque pattern, a half-transparent band, and fully transparent areas whose
stored colour is not black) and clip-golden.json with each image's 16 x 16 block means per channel. With
../shared/data/clip/CLIP.png present it also prints the 4 x 4 block means of CLIP.png that the self-test of
clip-vit-b32 compares (src/embed/clip-model.ts).
"""
import json
import pathlib

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).parent
SHARED = HERE.parent.parent.parent / "shared" / "data" / "clip" / "CLIP.png"
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


def openai_clip(img):
    # torchvision's Resize(224) on a Pillow image: shorter side 224, longer side truncated, Pillow bicubic
    # (which resamples RGBA premultiplied).
    w, h = img.size
    if w <= h:
        size = (224, int(224 * h / w))
    else:
        size = (int(224 * w / h), 224)
    img = img.resize(size, Image.BICUBIC)
    # CenterCrop(224): offsets rounded as Python rounds.
    w, h = img.size
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224)).convert("RGB")
    arr = (np.asarray(img, dtype=np.float64) / 255.0 - MEAN) / STD
    return arr.transpose(2, 0, 1)  # channels first


def blocks(arr, n):
    side = 224 // n
    return arr.reshape(3, n, side, n, side).mean(axis=(2, 4))


def alpha_image():
    rng = np.random.default_rng(24)
    width, height = 360, 250
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgba = np.zeros((height, width, 4))
    for c in range(3):
        fx, fy = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0)
        rgba[..., c] = 128 + 100 * np.sin(fx * 6.28 * x / width) * np.cos(fy * 6.28 * y / height)
    rgba[..., 3] = 255
    rgba[:, 250:, 3] = 0  # fully transparent right side...
    rgba[:, 250:, :3] = (230, 40, 200)  # ...over a stored colour that is not black
    rgba[40:120, :, 3] = np.linspace(0, 255, width)[None, :]  # a band fading in
    rgba[180:230, 20:90, 3] = 0  # a transparent hole over black
    rgba[180:230, 20:90, :3] = 0
    return Image.fromarray(np.clip(rgba, 0, 255).astype(np.uint8), "RGBA")


alpha = alpha_image()
alpha.save(HERE / "clip-alpha.png")
golden = []
for name in ["clip-alpha.png", "landscape.png", "portrait.png", "gray.png"]:
    img = Image.open(HERE / name)
    golden.append({"file": name, "grid": np.round(blocks(openai_clip(img), 16), 5).flatten().tolist()})
(HERE / "clip-golden.json").write_text(json.dumps(golden) + "\n")
print("wrote", len(golden), "cases")
if SHARED.exists():
    print("CLIP.png 4 x 4:", json.dumps(np.round(blocks(openai_clip(Image.open(SHARED)), 4), 4).flatten().tolist()))
