"""Image preprocessing exactly as the Swift side does it, and a cache of the results.

LLaVA's path: Image.open(f).convert("RGB"), expand2square with the background int(mean*255),
then transformers' CLIPImageProcessorPil (resize shortest edge, bicubic; centre crop; rescale;
normalise). Rescale and normalise are elementwise per channel, so the processor's output is a
function of the resized uint8 image: the cache keeps that uint8 image ([N,3,S,S], 12 KB at 64 px)
and a per-channel lookup table of the processor's own float32 output for the 256 byte values.
`check_cache` verifies the identity against the full processor on a few images.
"""

import json
import os

import numpy as np
from PIL import Image
from transformers import CLIPImageProcessorPil


def make_processor(image_size):
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )


def expand2square(img, background):
    """LLaVA's pad: the image centred on a square of the background colour."""
    width, height = img.size
    if width == height:
        return img
    side = max(width, height)
    result = Image.new(img.mode, (side, side), background)
    result.paste(img, ((side - width) // 2, (side - height) // 2))
    return result


def load_padded(path, processor):
    img = Image.open(path).convert("RGB")
    return expand2square(img, tuple(int(x * 255) for x in processor.image_mean))


def pixel_values(path, processor):
    """[3,S,S] float32, the reference path end to end."""
    out = processor(images=load_padded(path, processor), return_tensors="np")["pixel_values"]
    return out[0].astype(np.float32)


def resized_u8(path, processor):
    """[3,S,S] uint8: the processor with rescale and normalise switched off."""
    out = processor(images=load_padded(path, processor), do_rescale=False, do_normalize=False, return_tensors="np")
    values = out["pixel_values"][0]
    assert np.array_equal(values, np.rint(values)) and values.min() >= 0 and values.max() <= 255
    return values.astype(np.uint8)


def lookup_table(processor):
    """[3,256] float32: the processor's rescale + normalise of every byte value, per channel."""
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, None, :], (3, 1, 1))  # [3,1,256] CHW
    x = processor.rescale(ramp.astype(np.float32), processor.rescale_factor)
    x = processor.normalize(x, processor.image_mean, processor.image_std)
    return np.asarray(x, dtype=np.float32)[:, 0, :]


def to_float(u8, table):
    """[N,3,S,S] uint8 -> float32 through the per-channel table."""
    out = np.empty(u8.shape, dtype=np.float32)
    for c in range(3):
        out[:, c] = table[c][u8[:, c]]
    return out


def cache_path(split_dir, image_size):
    return os.path.join(split_dir, f"pixels_u8_{image_size}.npy")


def build_cache(split_dir, image_size):
    """Preprocesses every image of a split (order of images.jsonl) once; returns [N,3,S,S] uint8."""
    path = cache_path(split_dir, image_size)
    if os.path.exists(path):
        return np.load(path)
    processor = make_processor(image_size)
    with open(os.path.join(split_dir, "images.jsonl")) as f:
        files = [json.loads(line)["file"] for line in f]
    cache = np.stack([resized_u8(os.path.join(split_dir, name), processor) for name in files])
    check_cache(split_dir, files, cache, processor)
    np.save(path + ".tmp.npy", cache)
    os.replace(path + ".tmp.npy", path)
    return cache


def check_cache(split_dir, files, cache, processor, count=16):
    table = lookup_table(processor)
    for i in range(0, len(files), max(1, len(files) // count)):
        ref = pixel_values(os.path.join(split_dir, files[i]), processor)
        got = to_float(cache[i : i + 1], table)[0]
        if not np.array_equal(ref, got):
            raise AssertionError(f"pixel cache differs from CLIPImageProcessorPil on {files[i]}: "
                                 f"max {np.abs(ref - got).max()}")
