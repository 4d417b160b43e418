"""Shapes haystacks: collections of N images in which exactly one image holds the needle.

    PY=$(Tools/python-env.sh); $PY Tools/demo/haystack.py --out out/haystack [--per-n 200] [--seed 0]

Scenes come from the shapes world (shapes.py's sampling and rendering) under a salt of their
own, and every scene whose content is in the train, val, test, samples or unseen split is
rejected, so the model never saw any of them. Eight colour-shape pairs are reserved (all six
colours and all four shapes among them): filler images hold none of them; each needle image
holds exactly one. The collection of size N for question i is that question's needle image
plus N-1 fillers drawn (seeded) from the filler pool, the needle at a random place.

Writes <out>/images/*.png|jpg, <out>/collections.jsonl ({"name", "n", "images": [file...]})
and <out>/questions.jsonl ({"collection", "n", "kind": "which"|"any", "question", "answer",
"needle": file or null, "needle_objects": count}). Per N: --per-n "which" questions (answer:
the needle's file) and --per-n "any" questions ("Is there a <c> <s> in any image?"), half
about the collection's needle ("yes"), half about another reserved pair that no image of the
collection holds ("no").
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402

SALT = 6
SIZES_N = [1, 4, 16, 64, 256, 1024]
RESERVED = [("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "cross"),
            ("purple", "circle"), ("orange", "triangle"), ("red", "square"), ("blue", "cross")]


def taken_contents():
    taken = set()
    for name in shapes.SPLIT_ORDER:
        taken.update(s.content_key() for s in shapes.split_scenes(name))
    return taken


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/haystack")
    parser.add_argument("--per-n", type=int, default=200, help="questions of each kind per N (default 200)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES_N)), help="collection sizes (default 1,4,16,64,256,1024)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.per_n < 2 or any(n < 1 for n in sizes):
        parser.error("--per-n must be >= 2 and every size >= 1")
    reserved = set(RESERVED)
    taken = taken_contents()

    fillers_needed = max(sizes) - 1
    needles_needed = args.per_n  # one needle image per question pair, shared by every N
    fillers, needles, index, seen = [], [], 0, set()
    while len(fillers) < fillers_needed or len(needles) < needles_needed:
        scene = shapes.sample_scene(SALT + 1000 * args.seed, index)
        index += 1
        key = scene.content_key()
        if key in taken or key in seen:
            continue
        pairs = {(o.color, o.shape) for o in scene.objects}
        held = pairs & reserved
        if not held and len(fillers) < fillers_needed:
            fillers.append(scene)
            seen.add(key)
        elif len(held) == 1 and len(needles) < needles_needed:
            # one object of the reserved pair (so "exactly one image holds it" and counts stay simple)
            if sum((o.color, o.shape) in reserved for o in scene.objects) == 1:
                needles.append(scene)
                seen.add(key)
    scenes = fillers + needles
    img_dir = os.path.join(args.out, "images")
    os.makedirs(img_dir, exist_ok=True)
    names = []
    for i, scene in enumerate(scenes):
        scene = shapes.Scene(i, scene.objects, scene.width, scene.height, scene.fmt, scene.seed)
        name = scene.file_name
        data = shapes.render(scene)
        with open(os.path.join(img_dir, name), "wb") as f:
            f.write(data)
        names.append(name)
    filler_names, needle_names = names[:len(fillers)], names[len(fillers):]

    rng = np.random.default_rng([SALT, args.seed, 42])
    collections, questions = [], []
    for n in sizes:
        for q in range(args.per_n):
            needle = needles[q]
            pair = next((o.color, o.shape) for o in needle.objects if (o.color, o.shape) in reserved)
            members = [filler_names[int(i)] for i in rng.choice(len(filler_names), size=n - 1, replace=False)]
            members.insert(int(rng.integers(n)), needle_names[q])
            name = f"hay-n{n}-{q:04d}"
            collections.append({"name": name, "n": n, "images": ["images/" + m for m in members]})
            c, s = pair
            questions.append({"collection": name, "n": n, "kind": "which", "question": f"Which image has a {c} {s}?",
                              "answer": "images/" + needle_names[q], "needle": "images/" + needle_names[q],
                              "needle_objects": len(needle.objects)})
            if q % 2 == 0:
                questions.append({"collection": name, "n": n, "kind": "any", "question": f"Is there a {c} {s} in any image?",
                                  "answer": "yes", "needle": "images/" + needle_names[q], "needle_objects": len(needle.objects)})
            else:
                others = [p for p in RESERVED if p != pair]
                oc, os_ = others[int(rng.integers(len(others)))]
                questions.append({"collection": name, "n": n, "kind": "any", "question": f"Is there a {oc} {os_} in any image?",
                                  "answer": "no", "needle": None, "needle_objects": None})
    with open(os.path.join(args.out, "collections.jsonl"), "w") as f:
        for c in collections:
            f.write(json.dumps(c) + "\n")
    with open(os.path.join(args.out, "questions.jsonl"), "w") as f:
        for q in questions:
            f.write(json.dumps(q) + "\n")
    digest = hashlib.sha256(open(os.path.join(args.out, "questions.jsonl"), "rb").read()).hexdigest()[:12]
    print(f"haystack: {len(fillers)} fillers + {len(needles)} needles -> {img_dir}; {len(collections)} collections, "
          f"{len(questions)} questions (sha256 {digest}) -> {args.out}")


if __name__ == "__main__":
    main()
