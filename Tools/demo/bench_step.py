"""Times one training step (forward + backward) of train.py's batch_loss, which runs one query
pass per group of questions over the same number of images, against the baseline it replaced:
one query pass with every question padded to 4 images and to the longest caption. Prints both
losses (they must agree) and the seconds per step, for full and voco k = 1.

    python Tools/demo/bench_step.py [--steps 4] [--threads 2]
"""

import argparse
import sys
import time

import torch
import torch.nn.functional as F

import qa
import shapes
import train
from model import TinyLlava


def padded_loss(model, codec, features, items):
    """The baseline: every question in one batch, padded to the most images and the longest text."""
    image_index, ids, targets = qa.training_batch(codec, items)
    placed = model.place(*model.compress(None, features), image_index)
    logits = model.query(ids, placed[4], placed)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=qa.IGNORE)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default="out/data/train")
    p.add_argument("--tokenizer", default="out/tokenizer/tokenizer.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    codec = qa.TextCodec(args.tokenizer)
    _, objects = shapes.load_split(args.data)
    for mode in ("full", "voco"):
        config = train.model_config(train.parse_args(["--mode", mode, "--out", "unused"]), codec)
        model = TinyLlava(config)
        stream = train.QuestionStream(objects, 0, 1000, 0.0, 0.4, 0.25)  # multi-image questions from the start
        seconds = {"padded": 0.0, "grouped": 0.0}
        for step in range(args.steps):
            raw = stream.batch(step, 64, 256)
            unique, local = qa.gather_images([picks for picks, _, _ in raw])
            items = [(l, q, a) for l, (_, q, a) in zip(local, raw)]
            features = torch.randn(len(unique), config.vision.num_patches, config.vision.hidden_size)  # tower output stand-in
            losses = {}
            for name, fn in (("padded", lambda: padded_loss(model, codec, features, items)),
                             ("grouped", lambda: train.batch_loss(model, codec, None, features, items)[0])):
                model.zero_grad(set_to_none=True)
                t = time.perf_counter()
                loss = fn()
                loss.backward()
                if step > 0:  # the first step warms up
                    seconds[name] += time.perf_counter() - t
                losses[name] = loss.item()
            assert abs(losses["padded"] - losses["grouped"]) < 1e-4, losses
        n = max(1, args.steps - 1)
        print(f"{mode:5s} padded {seconds['padded'] / n:.3f} s/step, grouped {seconds['grouped'] / n:.3f} s/step "
              f"({seconds['padded'] / seconds['grouped']:.2f}x); last losses {losses['padded']:.6f} / "
              f"{losses['grouped']:.6f}")


if __name__ == "__main__":
    sys.exit(main())
