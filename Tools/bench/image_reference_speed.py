#!/usr/bin/env python3
"""Times the Python reference on one JPEG: Pillow decode + convert("RGB"), then
CLIPImageProcessorPil to a SIZE-pixel input (crop mode, and pad mode with LLaVA's expand2square).
Compare with `voco-bench images --save-jpeg FILE` on the same machine and file.
    .venv/bin/python Tools/bench/image_reference_speed.py FILE [SIZE]
"""
import io
import sys
import time

from PIL import Image
from transformers import CLIPImageProcessorPil


def best(fn, iterations=10, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        times.append((time.perf_counter() - start) / iterations)
    return min(times)


def main():
    path, size = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 336
    data = open(path, "rb").read()
    proc = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    background = tuple(int(x * 255) for x in proc.image_mean)

    def decode():
        return Image.open(io.BytesIO(data)).convert("RGB")

    def pad(im):
        side = max(im.size)
        square = Image.new("RGB", (side, side), background)
        square.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
        return square

    figures = {
        "decode only": best(decode),
        "decode + preprocess, crop": best(lambda: proc(images=decode(), return_tensors="np")),
        "decode + preprocess, pad": best(lambda: proc(images=pad(decode()), return_tensors="np")),
    }
    for label, seconds in figures.items():
        print(f"python reference, {label}: {1 / seconds:.1f} images/s ({seconds * 1000:.3f} ms)")


if __name__ == "__main__":
    main()
