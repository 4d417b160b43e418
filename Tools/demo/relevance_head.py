"""A relevance head for the planner: which stored caches hold a "<colour> <shape>".

The query planner ranks a collection's images from their stored VoCo caches alone. The model's own
probes ("Is there a red circle?", one image at a time) rank the needle of a 1,024-image haystack
first only about a fifth of the time (docs/query.md). This tool
trains a small head on the caches themselves, MIRAGE's approach on Visual Haystacks: an MLP reads
one image's cache (every layer's K and V rows, as the store keeps them) and gives one logit per
target phrase ("red circle", ...). It is exported into the model directory as relevance/head.safetensors (a folder of its own, so
that no tool takes it for a weight shard) and
named by relevance.json's "head"; the Swift planner runs it (Sources/VoCoPipeline/Query).

Steps (each resumable):
  render  PY Tools/demo/relevance_head.py render --out out/head --count 30000
          (train-split scenes, never test/val/samples/unseen; labels in out/head/images.jsonl)
  ingest  voco ingest out/head/images --collection head --store out/head/store --json
  train   PY Tools/demo/relevance_head.py train --data out/head --model Models/voco-shapes --fingerprint F
          (F: the "model" field of the ingest summary)
Needs numpy, Pillow, lmdb and zstandard (no torch).
"""

import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))


def render(args):
    import shapes

    scenes = shapes.split_scenes("train")[: args.count]
    img_dir = os.path.join(args.out, "images")
    os.makedirs(img_dir, exist_ok=True)
    with open(os.path.join(args.out, "images.jsonl"), "w") as manifest:
        for scene in scenes:
            data = shapes.render(scene)
            with open(os.path.join(img_dir, scene.file_name), "wb") as f:
                f.write(data)
            manifest.write(json.dumps({
                "file": scene.file_name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "objects": [[o.color, o.shape, o.size, o.position] for o in scene.objects],
            }) + "\n")
    print(f"{len(scenes)} train scenes -> {img_dir}")


def load_features(data, model_fingerprint):
    """Features [images, 2 * layers * rows * width] (every layer's K rows, then V rows, float32)
    of every record of the model in data/store, and each image's set of "<colour> <shape>"."""
    import lmdb
    import read_records as rr

    labels = {}
    with open(os.path.join(data, "images.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            labels[bytes.fromhex(m["sha256"])] = {f"{o[0]} {o[1]}" for o in m["objects"]}
    env = rr.open_store(os.path.join(data, "store"))
    records = env.open_db(b"records", create=False)
    features, holds = [], []
    with env.begin(db=records) as txn:
        for key, value in txn.cursor():
            key = bytes(key)
            if len(key) != 65 or key[:32] != model_fingerprint or key[32:64] not in labels:
                continue
            _, k, v = rr.decode_record(bytes(value), key[:32], key[32:64])
            features.append(np.concatenate([k.reshape(-1), v.reshape(-1)]).astype(np.float32))
            holds.append(labels[key[32:64]])
    return np.stack(features), holds


def auc(scores, truth):
    """P(a random positive outscores a random negative), ties half."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = truth.sum()
    neg = len(truth) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))


def train(args):
    import shapes

    fingerprint = bytes.fromhex(args.fingerprint)
    x, holds = load_features(args.data, fingerprint)
    targets = [f"{c} {s}" for c in shapes.COLOR_NAMES for s in shapes.SHAPES]
    y = np.array([[t in h for t in targets] for h in holds], dtype=np.float32)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x))
    held = order[: len(x) // 10]
    fit = order[len(x) // 10:]
    mean, std = x[fit].mean(0), x[fit].std(0) + 1e-6
    xs = (x - mean) / std
    d, hdim, t = x.shape[1], args.hidden, len(targets)
    w1 = rng.normal(0, np.sqrt(2 / d), (d, hdim)).astype(np.float32)
    b1 = np.zeros(hdim, np.float32)
    w2 = rng.normal(0, np.sqrt(1 / hdim), (hdim, t)).astype(np.float32)
    b2 = np.zeros(t, np.float32)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0

    def forward(xb):
        h = np.maximum(xb @ w1 + b1, 0)
        return h, h @ w2 + b2

    for epoch in range(args.epochs):
        perm = rng.permutation(fit)
        for start in range(0, len(perm), args.batch):
            idx = perm[start:start + args.batch]
            xb, yb = xs[idx], y[idx]
            h, logits = forward(xb)
            p = 1 / (1 + np.exp(-logits))
            g = (p - yb) / len(idx)  # d(mean BCE summed over targets)/d logits
            gw2 = h.T @ g
            gb2 = g.sum(0)
            gh = (g @ w2.T) * (h > 0)
            gw1 = xb.T @ gh + args.decay * w1
            gb1 = gh.sum(0)
            step += 1
            lr = args.lr * min(1.0, step / 200) * 0.5 * (1 + np.cos(np.pi * min(1.0, epoch / args.epochs)))
            for i, grad in enumerate([gw1, gb1, gw2, gb2]):
                m[i] = 0.9 * m[i] + 0.1 * grad
                v[i] = 0.999 * v[i] + 0.001 * grad * grad
                params[i] -= lr * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            _, logits = forward(xs[held])
            aucs = [auc(logits[:, j], y[held, j] > 0) for j in range(t)]
            wrong = ((logits > 0) != (y[held] > 0)).mean()
            print(f"epoch {epoch + 1}: held-out mean AUC {np.nanmean(aucs):.5f}, min {np.nanmin(aucs):.5f}, "
                  f"per-label error {wrong:.5f}", flush=True)

    # Fold the standardisation into the first layer: (x - mean) / std @ w1 = x @ (w1 / std) - (mean / std) @ w1.
    w1f = (w1 / std[:, None]).astype(np.float32)
    b1f = (b1 - (mean / std) @ w1).astype(np.float32)
    out = os.path.join(args.model, "relevance", "head.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, {
        "hidden.weight": np.ascontiguousarray(w1f.T), "hidden.bias": b1f,
        "output.weight": np.ascontiguousarray(w2.T), "output.bias": b2,
    }, {"targets": json.dumps(targets), "model_fingerprint": args.fingerprint, "features": "keys,values",
        "images": str(len(x)), "held_out_images": str(len(held))})
    print(f"wrote {out}: {d} -> {hdim} -> {t} targets")


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render")
    r.add_argument("--out", required=True)
    r.add_argument("--count", type=int, default=30000)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True, help="folder with images.jsonl and store/")
    t.add_argument("--model", required=True, help="model directory: relevance/head.safetensors is written there")
    t.add_argument("--fingerprint", required=True, help="the model's fingerprint (voco inspect models --store DATA/store)")
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--decay", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"render": render, "train": train}[args.command](args)
