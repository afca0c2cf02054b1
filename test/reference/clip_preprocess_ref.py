#!/usr/bin/python3
"""Reference CLIP image preprocessing with PIL + numpy (independent of Manyfold's TypeScript).

Written from the semantics of Hugging Face's (slow, PIL-based) CLIPImageProcessor as loaded through
`transformers.image_utils.load_image`:
  1. open with PIL, apply the EXIF orientation (ImageOps.exif_transpose), convert('RGB') (alpha is dropped,
     not composited; embedded ICC profiles are not applied);
  2. resize so the shortest edge equals `shortest_edge`, the other edge int(shortest_edge * long / short)
     (truncation, as get_resize_output_image_size(default_to_square=False) computes it), PIL BICUBIC with no
     reducing gap;
  3. centre crop crop x crop at top = (h - crop) // 2, left = (w - crop) // 2.
The output is the uint8 [crop, crop, 3] array before rescale / normalisation (Manyfold's image tower divides by
255 and normalises with the checkpoint's mean / std inside its forward pass, as CLIP's processor does after
this point).

Usage (Debian's interpreter has PIL and numpy; the pyenv `python3` on PATH may not):
  /usr/bin/python3 test/reference/clip_preprocess_ref.py --shortest-edge 224 --crop 224 --out DIR IMAGE...
Writes DIR/<k>.rgb (raw uint8, row-major [crop, crop, 3]) for the k-th image and DIR/index.json describing
each: file, oriented width / height, resized width / height, crop top / left, sha256 of the output bytes.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
from PIL import Image, ImageOps


def resized_size(width, height, shortest_edge):
    """(new_width, new_height) with the shortest edge at `shortest_edge`, the other edge truncated."""
    if width <= height:
        return shortest_edge, int(shortest_edge * height / width)
    return int(shortest_edge * width / height), shortest_edge


def preprocess(path, shortest_edge, crop):
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image = image.convert('RGB')
    width, height = image.size
    new_width, new_height = resized_size(width, height, shortest_edge)
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), resample=Image.BICUBIC, reducing_gap=None)
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.shape != (new_height, new_width, 3):
        raise SystemExit(f'{path}: PIL produced shape {pixels.shape}, expected {(new_height, new_width, 3)}')
    top = (new_height - crop) // 2
    left = (new_width - crop) // 2
    if top < 0 or left < 0:
        # cannot happen when shortest_edge >= crop; CLIP's processor would pad with zeros here
        raise SystemExit(f'{path}: resized image {new_width}x{new_height} is smaller than the crop {crop}')
    out = np.ascontiguousarray(pixels[top:top + crop, left:left + crop, :])
    info = {
        'file': path,
        'width': width,
        'height': height,
        'resizedWidth': new_width,
        'resizedHeight': new_height,
        'top': top,
        'left': left,
        'sha256': hashlib.sha256(out.tobytes()).hexdigest(),
    }
    return out, info


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shortest-edge', type=int, required=True)
    parser.add_argument('--crop', type=int, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('images', nargs='+')
    args = parser.parse_args()
    if args.crop < 1 or args.shortest_edge < args.crop:
        parser.error('need 1 <= crop <= shortest-edge')
    os.makedirs(args.out, exist_ok=True)
    entries = []
    for k, path in enumerate(args.images):
        out, info = preprocess(path, args.shortest_edge, args.crop)
        with open(os.path.join(args.out, f'{k}.rgb'), 'wb') as f:
            f.write(out.tobytes())
        entries.append(info)
    index = {
        'shortestEdge': args.shortest_edge,
        'crop': args.crop,
        'pillow': Image.__version__,
        'numpy': np.__version__,
        'python': sys.version.split()[0],
        'images': entries,
    }
    with open(os.path.join(args.out, 'index.json'), 'w') as f:
        json.dump(index, f, indent=1)


if __name__ == '__main__':
    main()
