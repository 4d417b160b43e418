"""Trains a tiny LLaVA on the shapes world with the VoCo two-pass recipe (or a comparison variant).

Every step draws fresh questions over the training images (seeded by step), compresses each
image on its own (model.compress), places the caches in the `sequential` layout and computes
the loss on the answer tokens of the query pass (model.query). A curriculum starts with
single-image questions and then mixes in questions over 2 to 4 images.

    python Tools/demo/train.py --mode voco --k 1 --out out/runs/voco-k1
    python Tools/demo/train.py --mode full --out out/runs/full
    python Tools/demo/train.py --mode avgpool --out out/runs/avgpool
    python Tools/demo/train.py --mode text-only --out out/runs/text-only
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: spinning OpenMP threads starve each other

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import make_tokenizer
import pixels as pix
import qa
import runlog
import shapes
from model import MODES, ModelConfig, TextConfig, TinyLlava, VisionConfig
from pretrain_vision import cell_labels

# MARK: - Set-up


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--k", type=int, default=1, help="VoCo tokens per image (mode voco)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, train.log")
    p.add_argument("--data", default="out/data")
    p.add_argument("--tokenizer", default="out/tokenizer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=4000, help="length of the learning-rate schedule")
    p.add_argument("--stop-at", type=int, help="stop after this many steps of the schedule (a run in stages: "
                                                "the next stage starts from this one's checkpoint with --init)")
    p.add_argument("--images", type=int, default=64, help="training images compressed per step")
    p.add_argument("--questions", type=int, default=256, help="questions per step over those images")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--single-only", type=float, default=0.2, help="fraction of steps with single-image questions only")
    p.add_argument("--multi", type=float, default=0.4, help="share of multi-image questions after that")
    p.add_argument("--describe", type=float, default=0.0,
                   help="captions ('Describe the image.') per training image per step, on top of the questions")
    p.add_argument("--scene-loss", type=float, default=0.0,
                   help="weight of the scene-table loss (modes voco, avgpool): linear heads read every grid "
                        "cell's shape, colour and size off the V an image's cache holds; the heads are thrown away")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-questions", type=int, default=250, help="validation questions at each evaluation")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--vision-width", type=int, default=128)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--vision", help="tower.pt from pretrain_vision.py: the pretrained vision tower, kept frozen "
                                    "(as LLaVA keeps CLIP frozen); its features are computed once for all images")
    p.add_argument("--init", help="checkpoint.pt of an earlier run (e.g. the full model) to start from: every "
                                  "variant has the same parameters, only what the caches hold differs")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.scene_loss < 0:
        p.error(f"--scene-loss {args.scene_loss}: a weight, 0 (off) or more")
    if args.stop_at is not None and not 0 < args.stop_at <= args.steps:
        p.error(f"--stop-at {args.stop_at}: must be between 1 and --steps ({args.steps})")
    return args


def ensure_data(data_dir, tokenizer_dir, image_size, log):
    for split in ("train", "val"):
        split_dir = os.path.join(data_dir, split)
        if not os.path.exists(os.path.join(split_dir, "images.jsonl")):
            t = time.time()
            shapes.write_split(split, split_dir)
            log(f"wrote split {split} to {split_dir} in {time.time() - t:.0f}s")
        t = time.time()
        pix.build_cache(split_dir, image_size)
        log(f"pixel cache {split}: {time.time() - t:.1f}s")
    if not os.path.exists(os.path.join(tokenizer_dir, "tokenizer.json")):
        make_tokenizer.write(make_tokenizer.build(shapes.corpus_lines(20000)), tokenizer_dir)
        log(f"trained tokenizer -> {tokenizer_dir}")


def model_config(args, codec):
    vision = VisionConfig(hidden_size=args.vision_width, intermediate_size=4 * args.vision_width,
                          num_hidden_layers=args.vision_layers, num_attention_heads=max(1, args.vision_width // 32),
                          image_size=args.image_size, patch_size=args.patch)
    text = TextConfig(hidden_size=args.width, intermediate_size=3 * args.width, num_hidden_layers=args.layers,
                      num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                      vocab_size=codec.tok.get_vocab_size())
    return ModelConfig(vision=vision, text=text, mode=args.mode, num_voco=args.k,
                       bos_id=codec.bos_id, eos_id=codec.eos_id, voco_id=codec.voco_id)


# MARK: - Data


class QuestionStream:
    """Questions drawn on the fly, deterministic by (seed, step): each step picks a set of training
    images and asks several questions about them (single-image questions about one of them,
    multi-image questions about 2 to 4 of them), so every compressed image feeds several answers."""

    def __init__(self, objects, seed, steps, single_only, multi, describe):
        self.objects, self.seed = objects, seed
        self.single_steps, self.multi, self.describe = int(steps * single_only), multi, describe

    def batch(self, step, images, questions):
        rng = np.random.default_rng([self.seed, step])
        chosen = [int(i) for i in rng.choice(len(self.objects), size=images, replace=False)]
        pool = [self.objects[i] for i in chosen]
        p_multi = 0.0 if step < self.single_steps else self.multi
        captions = int(round(self.describe * images))  # of the first images (the choice is random)
        items = [([chosen[i]], *shapes.describe(pool[i])) for i in range(captions)]
        while len(items) < captions + questions:
            templates = shapes.MULTI if rng.random() < p_multi else shapes.SINGLE
            template = list(templates)[rng.integers(len(templates))]
            drawn = shapes.draw_question(template, pool, rng)
            if drawn:
                picks, (question, answer, _) = drawn
                items.append(([chosen[i] for i in picks], question, answer))
        return items


@torch.no_grad()
def tower_features(model, cache_u8, table, chunk=256):
    """[N,P,vHidden] float16: the frozen tower's selected features of every cached image."""
    out = []
    for start in range(0, len(cache_u8), chunk):
        pixels = torch.from_numpy(pix.to_float(cache_u8[start : start + chunk], table))
        out.append(model.image_features(pixels)[0].half())
    return torch.cat(out)


class SceneHeads(nn.Module):
    """The scene-table loss: from the V rows an image's cache holds, in every layer ([N,layers,P',kvd]
    flattened), linear heads name each of the 9 grid cells' shape (or empty), colour and size.
    It asks the compressed rows to hold the whole scene, bound by cell, in the form text reads
    them (V): the dense per-image signal that the answer tokens give only a few bits of. Training
    only, like pretrain_vision.py's heads: nothing of it is exported."""

    def __init__(self, config):
        super().__init__()
        t = config.text
        width = t.num_hidden_layers * config.kept_rows * t.num_key_value_heads * t.head_dim
        self.shape = nn.Linear(width, 9 * (1 + len(shapes.SHAPES)))
        self.color = nn.Linear(width, 9 * len(shapes.COLOR_NAMES))
        self.size = nn.Linear(width, 9 * len(shapes.SIZES))

    def loss(self, cache_v, labels):
        """cache_v [N,layers,P',kvd]; labels: shape, colour, size [N,9] (colour, size IGNORE where empty)."""
        v = cache_v.flatten(1).float()
        return sum(F.cross_entropy(head(v).view(len(v), 9, -1).flatten(0, 1), y.flatten(), ignore_index=qa.IGNORE)
                   for head, y in zip((self.shape, self.color, self.size), labels))


def batch_loss(model, codec, pixels, features, items, scene=None):
    """Mean cross-entropy over the answer tokens of items (local image list, question, answer):
    every image compressed once (model.compress), then one query pass (model.place, model.query)
    per group of items over the same number of images and of about the same length. The same
    loss as one batch padded to 4 images and the longest caption, at a fraction of the cost
    (full mode places 65 rows per image slot). Returns (that loss, the scene-table loss of the
    compressed images, or None without scene = (SceneHeads, the images' cell_labels))."""
    groups = {}
    for item in items:
        length = len(codec.prompt_ids(item[1])) + len(codec.answer_ids(item[2]))
        groups.setdefault((len(item[0]), length > 20), []).append(item)  # > 20 tokens: the captions
    cache = None if model.config.mode == "text-only" else model.compress(pixels, features)
    total, count = 0.0, 0
    for group in groups.values():
        image_index, ids, targets = qa.training_batch(codec, group)
        if cache is None:
            logits = model.query(ids, torch.zeros(len(group), dtype=torch.long))
        else:
            placed = model.place(*cache, image_index)
            logits = model.query(ids, placed[4], placed)
        total = total + F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=qa.IGNORE,
                                        reduction="sum")
        count += int((targets != qa.IGNORE).sum())
    return total / count, None if scene is None else scene[0].loss(cache[1], scene[1])


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model, args):
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.dim() >= 2 and "embed" not in n]
    rest = [p for n, p in trainable if not (p.dim() >= 2 and "embed" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))


# MARK: - Validation


def validate(model, codec, val_cache, table, val_files, val_questions):
    index = {name: i for i, name in enumerate(val_files)}
    questions = [dict(q, images=[index[f] for f in q["images"]]) for q in val_questions]
    model.eval()
    results = qa.answer_questions(model, codec, lambda keys: torch.from_numpy(pix.to_float(val_cache[keys], table)),
                                  questions)
    model.train()
    return qa.accuracy_by_type(val_questions, [r[0] for r in results], shapes.QUESTION_TYPES)


# MARK: - Training


def main(argv=None):
    args = parse_args(argv)
    log = runlog.start_run(args.out, args.threads, args.seed)

    log("args " + " ".join(sys.argv[1:] if argv is None else argv))
    ensure_data(args.data, args.tokenizer, args.image_size, log)
    codec = qa.TextCodec(os.path.join(args.tokenizer, "tokenizer.json"))
    config = model_config(args, codec)
    model = TinyLlava(config)
    if args.vision:
        tower = torch.load(args.vision, map_location="cpu")
        if tower["config"] != config.vision.__dict__:
            raise ValueError(f"{args.vision}: vision config {tower['config']} differs from {config.vision.__dict__}")
        model.vision_model.load_state_dict(tower["state_dict"])
        model.vision_model.requires_grad_(False)
        log(f"vision tower from {args.vision} (pretrained in {tower['seconds']:.0f}s), frozen")
    if args.init:
        state = torch.load(args.init, map_location="cpu")
        model.load_state_dict(state["state_dict"])
        log(f"initialised from {args.init} ({state['config']['mode']}, {state['steps']} steps, "
            f"{state['train_seconds']:.0f}s)")
    log(f"model {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, mode {config.mode}, "
        f"k {config.num_voco}, cache rows per image {config.kept_rows}")

    train_dir, val_dir = os.path.join(args.data, "train"), os.path.join(args.data, "val")
    train_cache = np.load(pix.cache_path(train_dir, args.image_size))
    val_cache = np.load(pix.cache_path(val_dir, args.image_size))
    table = pix.lookup_table(pix.make_processor(args.image_size))
    _, train_objects = shapes.load_split(train_dir)
    val_files, _ = shapes.load_split(val_dir)
    val_questions = shapes.load_questions(val_dir)
    quick_val = val_questions[: args.eval_questions]
    train_features = None
    if args.vision and config.mode != "text-only":
        t = time.time()
        train_features = tower_features(model, train_cache, table)
        log(f"vision features of {len(train_features)} training images in {time.time() - t:.0f}s")
    stream = QuestionStream(train_objects, args.seed, args.steps, args.single_only, args.multi, args.describe)
    heads, train_scenes = None, None
    if args.scene_loss > 0:
        if config.mode not in ("voco", "avgpool"):
            raise ValueError(f"--scene-loss: mode {config.mode} compresses nothing (modes voco, avgpool)")
        heads, train_scenes = SceneHeads(config), [torch.from_numpy(y) for y in cell_labels(train_objects)]
        if args.init and "scene_heads" in state and state["config"] == config.to_dict():
            heads.load_state_dict(state["scene_heads"])
        log(f"scene-table loss, weight {args.scene_loss}: heads on {heads.shape.in_features} cached V values")
    trained = nn.ModuleList([model] + ([heads] if heads is not None else []))
    optimizer = make_optimizer(trained, args)

    def save(steps, seconds):
        """checkpoint.pt, written at every evaluation too, so a stopped run keeps its latest state."""
        torch.save({"config": config.to_dict(), "state_dict": model.state_dict(), "prompt_template": codec.template,
                    "tokenizer": args.tokenizer, "steps": steps, "train_seconds": seconds, "init": args.init,
                    **({"scene_heads": heads.state_dict()} if heads is not None else {})},
                   os.path.join(args.out, "checkpoint.pt.tmp"))
        os.replace(os.path.join(args.out, "checkpoint.pt.tmp"), os.path.join(args.out, "checkpoint.pt"))

    start, seen_loss, seen, seen_scene = time.time(), 0.0, 0, 0.0
    end = args.stop_at or args.steps
    for step in range(end):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        items = stream.batch(step, args.images, args.questions)
        unique, local = qa.gather_images([picks for picks, _, _ in items])
        if train_features is not None:
            pixels, features = None, train_features[unique].float()
        else:
            pixels, features = torch.from_numpy(pix.to_float(train_cache[unique], table)), None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            scene = None if heads is None else (heads, [y[unique] for y in train_scenes])
            loss, scene_loss = batch_loss(model, codec, pixels, features,
                                          [(l, q, a) for l, (_, q, a) in zip(local, items)], scene)
        optimizer.zero_grad(set_to_none=True)
        (loss if scene_loss is None else loss + args.scene_loss * scene_loss).backward()
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        optimizer.step()
        seen_loss, seen = seen_loss + loss.item(), seen + 1
        seen_scene += 0.0 if scene_loss is None else scene_loss.item()
        if (step + 1) % 50 == 0:
            log(f"step {step + 1} loss {seen_loss / seen:.4f} "
                + (f"scene {seen_scene / seen:.4f} " if heads is not None else "")
                + f"lr {lr_at(step, args):.2e} images {len(unique)} elapsed {time.time() - start:.0f}s")
            seen_loss, seen, seen_scene = 0.0, 0, 0.0
        if (step + 1) % args.eval_every == 0 and step + 1 < end:
            t = time.time()
            acc = validate(model, codec, val_cache, table, val_files, quick_val)
            log(f"val@{step + 1} ({len(quick_val)} q, {time.time() - t:.0f}s) {qa.format_accuracy(acc)}")
            save(step + 1, time.time() - start)

    train_time = time.time() - start
    save(end, train_time)
    log(f"trained {end} steps in {train_time:.0f}s ({train_time / 60:.1f} min)")
    acc = validate(model, codec, val_cache, table, val_files, val_questions)
    log(f"val final ({len(val_questions)} q) {qa.format_accuracy(acc)}")


if __name__ == "__main__":
    main()
