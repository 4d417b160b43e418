"""Stage 0: pretrains the CLIP-style vision tower on the shapes world (our stand-in for CLIP's own
pretraining: LLaVA starts from a pretrained vision encoder, and every variant here starts from
the same one).

Dense supervision: every patch of the selected features (hidden_states[mm_vision_select_layer])
predicts, through linear heads, the content of the grid cell its centre falls in (shape or
empty, colour, size) and which cell that is (or the padding). Patches thus carry what is where,
locally, which is what the language model later looks up. The heads are thrown away;
train.py --vision loads the tower.

    python Tools/demo/pretrain_vision.py --out out/runs/vision
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: spinning OpenMP threads starve each other

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import pixels as pix
import runlog
import shapes
from model import CLIPVisionTransformer, VisionConfig, sincos_positions

SELECT_LAYER = -2
IGNORE = -100

# MARK: - Labels


def patch_cells(width, height, image_size, patch):
    """[P] grid cell (0..8) of each patch centre in the original image, -1 in LLaVA's padding."""
    side = max(width, height)
    ox, oy = (side - width) // 2, (side - height) // 2
    n = image_size // patch
    centres = (np.arange(n) + 0.5) * patch * side / image_size  # in padded-square pixels
    y, x = np.meshgrid(centres - oy, centres - ox, indexing="ij")
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    cell = (np.floor(3 * y / height) * 3 + np.floor(3 * x / width)).astype(np.int64)
    return np.where(inside, np.clip(cell, 0, 8), -1).reshape(-1)


def cell_labels(objects):
    """Per image [9] labels of the grid cells: shape (0 = empty), colour and size (IGNORE if empty)."""
    n = len(objects)
    shape = np.zeros((n, 9), dtype=np.int64)
    color = np.full((n, 9), IGNORE, dtype=np.int64)
    size = np.full((n, 9), IGNORE, dtype=np.int64)
    for i, objs in enumerate(objects):
        for o in objs:
            cell = o.row * 3 + o.col
            shape[i, cell] = 1 + shapes.SHAPES.index(o.shape)
            color[i, cell] = shapes.COLOR_NAMES.index(o.color)
            size[i, cell] = shapes.SIZES.index(o.size)
    return shape, color, size


def patch_labels(manifest, objects, image_size, patch):
    """Per image [P] labels: cell (9 = padding), shape (0 = empty), colour and size (IGNORE if empty):
    those of the grid cell each patch centre falls in (cell_labels), empty in the padding."""
    cells = np.stack([patch_cells(m["width"], m["height"], image_size, patch) for m in manifest])  # [N,P]
    inside, at = cells >= 0, np.maximum(cells, 0)
    per_cell = cell_labels(objects)
    labels = [np.where(inside, np.take_along_axis(a, at, axis=1), empty)
              for a, empty in zip(per_cell, (0, IGNORE, IGNORE))]
    return [torch.from_numpy(a) for a in (np.where(inside, cells, 9), *labels)]


class PatchHeads(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.cell = nn.Linear(width, 10)
        self.shape = nn.Linear(width, 1 + len(shapes.SHAPES))
        self.color = nn.Linear(width, len(shapes.COLOR_NAMES))
        self.size = nn.Linear(width, len(shapes.SIZES))

    def forward(self, feats):  # [N,P,vHidden]
        return self.cell(feats), self.shape(feats), self.color(feats), self.size(feats)


def load_manifest(split_dir):
    with open(os.path.join(split_dir, "images.jsonl")) as f:
        return [json.loads(line) for line in f]


# MARK: - Training


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/runs/vision")
    p.add_argument("--data", default="out/data")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    log = runlog.start_run(args.out, args.threads, args.seed)

    config = VisionConfig(hidden_size=args.width, intermediate_size=4 * args.width, num_hidden_layers=args.layers,
                          num_attention_heads=max(1, args.width // 32), image_size=args.image_size,
                          patch_size=args.patch)
    tower, heads = CLIPVisionTransformer(config), PatchHeads(args.width)
    for m in tower.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    nn.init.normal_(tower.embeddings.class_embedding, std=0.02)
    with torch.no_grad():
        tower.embeddings.position_embedding.weight.copy_(sincos_positions(config))
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    table = pix.lookup_table(pix.make_processor(args.image_size))
    train_dir, val_dir = os.path.join(args.data, "train"), os.path.join(args.data, "val")
    train_u8 = pix.build_cache(train_dir, args.image_size)
    _, train_objects = shapes.load_split(train_dir)
    train_labels = patch_labels(load_manifest(train_dir), train_objects, args.image_size, args.patch)
    val_px = torch.from_numpy(pix.to_float(pix.build_cache(val_dir, args.image_size), table))
    val_labels = patch_labels(load_manifest(val_dir), shapes.load_split(val_dir)[1], args.image_size, args.patch)
    log(f"args {vars(args)}")

    def loss_and_accuracy(px, labels):
        feats = tower.hidden_state(px, SELECT_LAYER)[:, 1:]
        logits = heads(feats)
        loss = sum(F.cross_entropy(l.flatten(0, 1), y.flatten(), ignore_index=IGNORE) for l, y in zip(logits, labels))
        right = [(l.argmax(-1) == y)[y != IGNORE].float().mean().item() for l, y in zip(logits, labels)]
        return loss, right

    start = time.time()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in optimizer.param_groups:
            g["lr"] = lr
        rng = np.random.default_rng([args.seed, step, 5])
        idx = np.sort(rng.choice(len(train_objects), size=args.batch, replace=False))
        px = torch.from_numpy(pix.to_float(train_u8[idx], table))
        loss, right = loss_and_accuracy(px, [t[idx] for t in train_labels])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if (step + 1) % 50 == 0:
            log(f"step {step + 1} loss {loss.item():.4f} cell/shape/color/size acc "
                + " ".join(f"{r:.3f}" for r in right) + f" elapsed {time.time() - start:.0f}s")
        if (step + 1) % 500 == 0 or step + 1 == args.steps:
            with torch.no_grad():
                vloss, vright = loss_and_accuracy(val_px, val_labels)
            log(f"val@{step + 1} loss {vloss.item():.4f} cell/shape/color/size acc "
                + " ".join(f"{r:.3f}" for r in vright))
    seconds = time.time() - start
    torch.save({"config": config.__dict__, "state_dict": tower.state_dict(), "seconds": seconds},
               os.path.join(args.out, "tower.pt"))
    log(f"trained {args.steps} steps in {seconds:.0f}s -> {os.path.join(args.out, 'tower.pt')}")


if __name__ == "__main__":
    main()
