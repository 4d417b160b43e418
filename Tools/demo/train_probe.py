"""Questions about *training* images, to tell under-training from overfitting.

Writes a split folder that evaluate.py scores like val or test: the first --images images of a
written train split (images.jsonl, the images folder linked, not copied) and --questions
questions over them, drawn by the same templates as every split (shapes.questions_over).
Training draws its questions fresh every step, so these exact questions were not trained on,
but the images were: a model far better here than on test has overfitted, one no better is
under-trained.

    python Tools/demo/train_probe.py --out out/data/train-probe
    python Tools/demo/evaluate.py out/models/voco-k1-from-k4-long --split out/data/train-probe
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default="out/data/train", help="a written train split (shapes.py --split train)")
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--questions", type=int, default=1000)
    p.add_argument("--seed", type=int, default=12345)
    args = p.parse_args(argv)
    manifest = os.path.join(args.train, "images.jsonl")
    if not os.path.isfile(manifest):
        p.error(f"--train {args.train}: no images.jsonl (write it with shapes.py --split train)")
    files, objects = shapes.load_split(args.train)
    if not 0 < args.images <= len(files):
        p.error(f"--images {args.images}: must be between 1 and {len(files)}, the images of {args.train}")
    files, objects = files[:args.images], objects[:args.images]

    os.makedirs(args.out, exist_ok=True)
    link = os.path.join(args.out, "images")
    if not os.path.lexists(link):
        os.symlink(os.path.abspath(os.path.join(args.train, "images")), link)
    with open(manifest) as f, open(os.path.join(args.out, "images.jsonl"), "w") as g:
        g.writelines(line for _, line in zip(range(args.images), f))
    questions = shapes.questions_over(objects, files, args.questions, np.random.default_rng([args.seed, 7]),
                                      "train-probe")
    with open(os.path.join(args.out, "questions.jsonl"), "w") as g:
        g.writelines(json.dumps(q) + "\n" for q in questions)
    print(f"{len(questions)} questions over the first {len(files)} images of {args.train} -> {args.out}")


if __name__ == "__main__":
    main()
