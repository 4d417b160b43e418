"""Writes the first N images of the shapes world's train split (Tools/demo/shapes.py): the
images `voco-bench ingest` ingests (PNG and JPEG, 96-192 x 72-160 px, the bundled model's world).

    python Tools/bench/shapes_images.py --count 10000 --out /tmp/shapes-10000
Needs Pillow and numpy (Tools/requirements.txt's pins): PY=$(Tools/python-env.sh), or a light venv
with just those two.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
import shapes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True, help="how many images (at most the train split's 30,000)")
    parser.add_argument("--out", required=True, help="output folder (created)")
    args = parser.parse_args()
    scenes = shapes.split_scenes("train")
    if not 0 < args.count <= len(scenes):
        parser.error(f"--count must be 1 to {len(scenes)}")
    os.makedirs(args.out, exist_ok=True)
    for scene in scenes[: args.count]:
        with open(os.path.join(args.out, scene.file_name), "wb") as f:
            f.write(shapes.render(scene))
    print(f"{args.count} images -> {args.out}")


if __name__ == "__main__":
    main()
