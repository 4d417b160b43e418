"""The shapes world: synthetic scenes, their images, and questions with short answers.

A scene holds 1 to 4 objects (shape, colour, size) in distinct cells of a 3x3 grid over a
non-square image with a varied background and pixel noise, saved as PNG or JPEG. Questions ask
about one image (colour, shape, count, existence, position, size, comparison) or about several
images at once, which they name by order: "image 1", "image 2", ... (the `sequential` layout).

Everything is deterministic by seed. Splits are disjoint by seed (each split has its own seed
salt) and by scene content (the objects, ignoring background and noise): validation rejects
test contents, samples reject both, train rejects all three, and `unseen` rejects all four: its
scenes are ones the model never saw in training nor in any other split (scenes of one object are
nearly all taken by train, so unseen scenes hold 2 to 4 objects), for checks that must not
lean on the test split (the record codecs' accuracy, docs/store.md).

    python Tools/demo/shapes.py --split test              # out/data/test/{images/,images.jsonl,questions.jsonl}
    python Tools/demo/shapes.py --split samples --out Samples --flat
    python Tools/demo/shapes.py --split unseen            # out/data/unseen, the same layout as test
"""

import argparse
import hashlib
import io
import json
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# MARK: - The world's vocabulary

SHAPES = ["circle", "square", "triangle", "cross"]
COLORS = {
    "red": (215, 35, 35),
    "green": (30, 160, 50),
    "blue": (35, 75, 220),
    "yellow": (235, 205, 30),
    "purple": (140, 50, 185),
    "orange": (245, 130, 20),
}
COLOR_NAMES = list(COLORS)
SIZES = ["big", "small"]
POSITIONS = [
    ["top left", "top middle", "top right"],
    ["middle left", "center", "middle right"],
    ["bottom left", "bottom middle", "bottom right"],
]
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
PROMPT_TEMPLATE = "Q: {question} A:"
# The most images one question reads (multi-image questions read 2 to this many): the exported
# config.json's voco.max_images, the trained maximum `voco ask` checks.
MAX_IMAGES_PER_QUESTION = 4

# Split name -> (seed salt, scene count, question count). Train questions are drawn on the fly.
SPLITS = {
    "test": (3, 500, 1000),
    "val": (2, 300, 500),
    "samples": (4, 40, 64),
    "train": (1, 30000, 0),
    "unseen": (5, 500, 1000),
}
SPLIT_ORDER = ["test", "val", "samples", "train", "unseen"]  # each split rejects the contents of those before it


# MARK: - Scenes


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    size: str
    row: int
    col: int

    @property
    def position(self):
        return POSITIONS[self.row][self.col]

    @property
    def name(self):
        return f"{self.color} {self.shape}"


@dataclass
class Scene:
    index: int
    objects: list
    width: int
    height: int
    fmt: str  # "png" | "jpg"
    seed: list  # the seed sequence entropy that renders it

    def content_key(self):
        return content_key(self.objects)

    @property
    def file_name(self):
        return f"{self.index:05d}.{self.fmt}"


def content_key(objects):
    """SHA-256 of the objects only (not background, noise, size or format)."""
    canon = sorted((o.row, o.col, o.shape, o.color, o.size) for o in objects)
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()


def sample_scene(salt, index):
    """The scene description; cheap (no pixels), so other splits' contents can be listed."""
    rng = np.random.default_rng([salt, index, 0])
    count = int(rng.choice([1, 2, 3, 4], p=[0.15, 0.25, 0.3, 0.3]))
    cells = rng.choice(9, size=count, replace=False)
    objects = [
        Obj(
            shape=SHAPES[rng.integers(len(SHAPES))],
            color=COLOR_NAMES[rng.integers(len(COLOR_NAMES))],
            size=SIZES[rng.integers(2)],
            row=int(c) // 3,
            col=int(c) % 3,
        )
        for c in cells
    ]
    while True:  # non-square, aspect ratio within [0.7, 1.43]
        width, height = int(rng.integers(96, 193)), int(rng.integers(72, 161))
        if width != height and 0.7 <= width / height <= 1.43:
            break
    fmt = "png" if rng.random() < 0.5 else "jpg"
    return Scene(index, objects, width, height, fmt, [salt, index, 1])


def split_scenes(split):
    """The scenes of a split, skipping any whose content appears in an earlier split."""
    taken = set()
    for name in SPLIT_ORDER:
        salt, count, _ = SPLITS[name]
        scenes, index = [], 0
        while len(scenes) < count:
            scene = sample_scene(salt, index)
            index += 1
            key = scene.content_key()
            if key in taken:
                continue
            scenes.append(scene)
        if name == split:
            return [Scene(i, s.objects, s.width, s.height, s.fmt, s.seed) for i, s in enumerate(scenes)]
        taken.update(s.content_key() for s in scenes)
    raise ValueError(f"unknown split {split!r}")


# MARK: - Rendering

SUPERSAMPLE = 4


def _soft_color(rng):
    """A low-saturation background colour, so objects stand out by hue."""
    grey = rng.integers(25, 236)
    return np.clip(grey + rng.integers(-18, 19, size=3), 0, 255).astype(np.float32)


def _background(rng, width, height):
    kind = rng.integers(3)
    a = _soft_color(rng)
    if kind == 0:  # solid
        img = np.broadcast_to(a, (height, width, 3)).copy()
    elif kind == 1:  # linear gradient at a random angle
        b = _soft_color(rng)
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        t = x * np.cos(angle) + y * np.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1.0)
        img = a * (1 - t[..., None]) + b * t[..., None]
    else:  # soft blotches: coarse noise upsampled
        coarse = rng.normal(0, 20, size=(4, 5, 1)) + rng.normal(0, 4, size=(4, 5, 3))  # mostly brightness
        coarse = coarse.astype(np.float32)
        blot = np.asarray(
            Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((width, height), Image.BICUBIC),
            dtype=np.float32,
        )
        img = a + (blot - 128)
    return img


def _draw_object(draw, obj, rng, width, height):
    s = SUPERSAMPLE
    cw, ch = width / 3, height / 3
    cx = (obj.col + 0.5 + rng.uniform(-0.12, 0.12)) * cw * s
    cy = (obj.row + 0.5 + rng.uniform(-0.12, 0.12)) * ch * s
    extent = min(cw, ch) * s * (0.8 if obj.size == "big" else 0.45) * rng.uniform(0.9, 1.05)
    r = extent / 2
    color = tuple(int(v) for v in np.clip(np.array(COLORS[obj.color]) + rng.integers(-20, 21, size=3), 0, 255))
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif obj.shape == "square":
        h = r * 0.85
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=color)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=color)
    elif obj.shape == "cross":
        t = r / 3
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=color)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=color)


def render(scene):
    """The encoded file bytes (PNG or JPEG) of a scene."""
    rng = np.random.default_rng(scene.seed)
    w, h = scene.width, scene.height
    bg = _background(rng, w * SUPERSAMPLE, h * SUPERSAMPLE)
    big = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(big)
    for obj in scene.objects:
        _draw_object(draw, obj, rng, w, h)
    img = big.resize((w, h), Image.BOX)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    sigma = rng.uniform(0, 10)
    pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, sigma, size=(h, w, 3))
    img = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    out = io.BytesIO()
    if scene.fmt == "png":
        img.save(out, format="PNG", optimize=False)
    else:
        img.save(out, format="JPEG", quality=int(rng.integers(55, 96)))
    return out.getvalue()


# MARK: - Questions about one image


def _unique(objs, **attrs):
    found = [o for o in objs if all(getattr(o, k) == v for k, v in attrs.items())]
    return found[0] if len(found) == 1 else None


def _plural(shape):
    return shape + "es" if shape == "cross" else shape + "s"


def q_color(objs, rng):
    o = objs[rng.integers(len(objs))]
    if _unique(objs, shape=o.shape) is None:
        return None
    return f"What color is the {o.shape}?", o.color


def q_shape(objs, rng):
    o = objs[rng.integers(len(objs))]
    if _unique(objs, color=o.color) is None:
        return None
    return f"What shape is the {o.color} object?", o.shape


def q_count(objs, rng):
    return "How many objects are there?", str(len(objs))


def q_count_color(objs, rng):
    c = objs[rng.integers(len(objs))].color if rng.random() < 0.7 else COLOR_NAMES[rng.integers(6)]
    return f"How many {c} objects are there?", str(sum(o.color == c for o in objs))


def q_count_shape(objs, rng):
    s = objs[rng.integers(len(objs))].shape if rng.random() < 0.7 else SHAPES[rng.integers(4)]
    return f"How many {_plural(s)} are there?", str(sum(o.shape == s for o in objs))


def _absent_pair(objs, rng):
    """A colour-shape pair not in the scene, sharing colour or shape with an object when it can."""
    o = objs[rng.integers(len(objs))]
    for _ in range(20):
        if rng.random() < 0.5:
            pair = (o.color, SHAPES[rng.integers(4)])
        else:
            pair = (COLOR_NAMES[rng.integers(6)], o.shape)
        if not any((x.color, x.shape) == pair for x in objs):
            return pair
    return None


def q_exists(objs, rng):
    if rng.random() < 0.5:
        o = objs[rng.integers(len(objs))]
        return f"Is there a {o.color} {o.shape}?", "yes"
    pair = _absent_pair(objs, rng)
    return None if pair is None else (f"Is there a {pair[0]} {pair[1]}?", "no")


def q_where(objs, rng):
    o = objs[rng.integers(len(objs))]
    if _unique(objs, color=o.color, shape=o.shape) is None:
        return None
    return f"Where is the {o.name}?", o.position


def q_what_at(objs, rng):
    if rng.random() < 0.8:
        o = objs[rng.integers(len(objs))]
        return f"What is at the {o.position}?", o.name
    free = [(r, c) for r in range(3) for c in range(3) if not any((o.row, o.col) == (r, c) for o in objs)]
    if not free:
        return None
    r, c = free[rng.integers(len(free))]
    return f"What is at the {POSITIONS[r][c]}?", "nothing"


def q_size(objs, rng):
    o = objs[rng.integers(len(objs))]
    if _unique(objs, color=o.color, shape=o.shape) is None:
        return None
    return f"Is the {o.name} big or small?", o.size


def q_bigger(objs, rng):
    if len(objs) < 2:
        return None
    i, j = rng.choice(len(objs), size=2, replace=False)
    a, b = objs[i], objs[j]
    if a.size == b.size or a.name == b.name:
        return None
    if _unique(objs, color=a.color, shape=a.shape) is None or _unique(objs, color=b.color, shape=b.shape) is None:
        return None
    return f"Which is bigger, the {a.name} or the {b.name}?", (a if a.size == "big" else b).name


def q_more(objs, rng):
    if rng.random() < 0.5:
        x, y = rng.choice(len(SHAPES), size=2, replace=False)
        nx = sum(o.shape == SHAPES[x] for o in objs)
        ny = sum(o.shape == SHAPES[y] for o in objs)
        question = f"Are there more {_plural(SHAPES[x])} than {_plural(SHAPES[y])}?"
    else:
        x, y = rng.choice(len(COLOR_NAMES), size=2, replace=False)
        nx = sum(o.color == COLOR_NAMES[x] for o in objs)
        ny = sum(o.color == COLOR_NAMES[y] for o in objs)
        question = f"Are there more {COLOR_NAMES[x]} objects than {COLOR_NAMES[y]} objects?"
    if nx == 0 and ny == 0:
        return None
    return question, "yes" if nx > ny else "no"


def q_relation(objs, rng):
    if len(objs) < 2:
        return None
    i, j = rng.choice(len(objs), size=2, replace=False)
    a, b = objs[i], objs[j]
    if _unique(objs, color=a.color, shape=a.shape) is None or _unique(objs, color=b.color, shape=b.shape) is None:
        return None
    if rng.random() < 0.5:
        if a.col == b.col:
            return None
        return f"Is the {a.name} left of the {b.name}?", "yes" if a.col < b.col else "no"
    if a.row == b.row:
        return None
    return f"Is the {a.name} above the {b.name}?", "yes" if a.row < b.row else "no"


# MARK: - Questions about several images (named by order: image 1, image 2, ...)


def _pair_in(scene_objs, rng):
    objs = scene_objs[rng.integers(len(scene_objs))]
    o = objs[rng.integers(len(objs))]
    return o.color, o.shape


def m_count_images(scenes, rng):
    if rng.random() < 0.6:
        c, s = _pair_in(scenes, rng)
        n = sum(any((o.color, o.shape) == (c, s) for o in objs) for objs in scenes)
        return f"How many images contain a {c} {s}?", str(n)
    s = SHAPES[rng.integers(4)]
    n = sum(any(o.shape == s for o in objs) for objs in scenes)
    return f"How many images have a {s}?", str(n)


def m_which_image(scenes, rng):
    c, s = _pair_in(scenes, rng)
    having = [i for i, objs in enumerate(scenes) if any((o.color, o.shape) == (c, s) for o in objs)]
    if len(having) != 1:
        return None
    return f"Which image has a {c} {s}?", f"image {having[0] + 1}"


def _in_image(single):
    """A single-image template asked about image N of several: "... in image N?"."""
    def template(scenes, rng):
        n = rng.integers(len(scenes))
        result = single(scenes[n], rng)
        if result is None:
            return None
        return result[0][:-1] + f" in image {n + 1}?", result[1]
    return template


m_color_in = _in_image(q_color)
m_shape_in = _in_image(q_shape)
m_where_in = _in_image(q_where)


def m_count_in(scenes, rng):
    n = rng.integers(len(scenes))
    return f"How many objects are in image {n + 1}?", str(len(scenes[n]))


def m_more_objects(scenes, rng):
    a, b = sorted(rng.choice(len(scenes), size=2, replace=False))
    if len(scenes[a]) == len(scenes[b]):
        return None
    winner = a if len(scenes[a]) > len(scenes[b]) else b
    return f"Which image has more objects, image {a + 1} or image {b + 1}?", f"image {winner + 1}"


def describe(objs):
    """A caption listing every object in reading order: training-only dense supervision (LLaVA's
    first stage aligns on captions); never in the evaluation splits, whose answers stay short."""
    ordered = sorted(objs, key=lambda o: (o.row, o.col))
    return "Describe the image.", " and ".join(f"{o.size} {o.color} {o.shape} at the {o.position}" for o in ordered)


# template name -> (question type, function)
SINGLE = {
    "color": ("color", q_color),
    "shape": ("shape", q_shape),
    "count": ("count", q_count),
    "count_color": ("count", q_count_color),
    "count_shape": ("count", q_count_shape),
    "exists": ("existence", q_exists),
    "where": ("position", q_where),
    "what_at": ("position", q_what_at),
    "relation": ("position", q_relation),
    "size": ("size", q_size),
    "bigger": ("comparison", q_bigger),
    "more": ("comparison", q_more),
}
MULTI = {
    "m_count_images": ("multi-count", m_count_images),
    "m_count_in": ("multi-count", m_count_in),
    "m_which_image": ("multi-which", m_which_image),
    "m_more_objects": ("multi-which", m_more_objects),
    "m_color_in": ("multi-attribute", m_color_in),
    "m_shape_in": ("multi-attribute", m_shape_in),
    "m_where_in": ("multi-attribute", m_where_in),
}
TEMPLATES = list(SINGLE) + list(MULTI)
QUESTION_TYPES = ["color", "shape", "count", "existence", "position", "size", "comparison",
                  "multi-count", "multi-which", "multi-attribute"]


def make_question(template, scenes_objects, rng):
    """(question, answer, type) for a template over the objects of one or more scenes, or None."""
    if template in SINGLE:
        qtype, fn = SINGLE[template]
        result = fn(scenes_objects[0], rng)
    else:
        qtype, fn = MULTI[template]
        result = fn(scenes_objects, rng)
    return None if result is None else (result[0], result[1], qtype)


def draw_question(template, pool_objects, rng, max_tries=50):
    """Picks images from a pool (list of object lists) and asks `template` about them."""
    for _ in range(max_tries):
        n = 1 if template in SINGLE else int(rng.integers(2, MAX_IMAGES_PER_QUESTION + 1))
        picks = [int(i) for i in rng.choice(len(pool_objects), size=n, replace=False)]
        result = make_question(template, [pool_objects[i] for i in picks], rng)
        if result is not None:
            return picks, result
    return None


def load_split(split_dir):
    """(image files, object lists) of a written split, in images.jsonl order."""
    cells = {name: (r, c) for r, row in enumerate(POSITIONS) for c, name in enumerate(row)}
    files, objects = [], []
    with open(os.path.join(split_dir, "images.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            files.append(m["file"])
            objects.append([Obj(shape, color, size, *cells[pos]) for color, shape, size, pos in m["objects"]])
    return files, objects


def load_questions(split_dir):
    with open(os.path.join(split_dir, "questions.jsonl")) as f:
        return [json.loads(line) for line in f]


def all_answers():
    """Every answer string the world can produce."""
    answers = set(COLOR_NAMES) | set(SHAPES) | set(SIZES) | {"yes", "no", "nothing"}
    answers |= {str(n) for n in range(5)} | {p for row in POSITIONS for p in row}
    answers |= {f"{c} {s}" for c in COLOR_NAMES for s in SHAPES} | {f"image {n}" for n in range(1, 5)}
    return sorted(answers)


def corpus_lines(count, seed=0):
    """Training text for the tokenizer: prompts with answers from every template."""
    rng = np.random.default_rng([seed, 99])
    pool = [sample_scene(1, i).objects for i in range(400)]
    lines = []
    while len(lines) < count:
        template = TEMPLATES[len(lines) % len(TEMPLATES)]
        drawn = draw_question(template, pool, rng)
        if drawn:
            question, answer, _ = drawn[1]
            lines.append(PROMPT_TEMPLATE.format(question=question) + " " + answer)
    for objs in pool[:200]:
        question, answer = describe(objs)
        lines.append(PROMPT_TEMPLATE.format(question=question) + " " + answer)
    return lines + all_answers()


# MARK: - Writing a split


def questions_over(objects, names, count, rng, id_prefix):
    """`count` questions balanced over templates about images of a pool (objects[i] in file names[i])."""
    questions = []
    while len(questions) < count:
        template = TEMPLATES[len(questions) % len(TEMPLATES)]
        drawn = draw_question(template, objects, rng)
        if drawn is None:
            continue
        picks, (question, answer, qtype) = drawn
        questions.append({
            "id": f"{id_prefix}-{len(questions):04d}",
            "images": [names[i] for i in picks],
            "question": question,
            "answer": answer,
            "type": qtype,
            "template": template,
        })
    return questions


def split_questions(split, scenes):
    """Balanced over templates, deterministic by split."""
    salt, _, count = SPLITS[split]
    return questions_over([s.objects for s in scenes], [s.file_name for s in scenes], count,
                          np.random.default_rng([salt, 7]), split)


def write_split(split, out_dir, image_subdir="images"):
    scenes = split_scenes(split)
    img_dir = os.path.join(out_dir, image_subdir) if image_subdir else out_dir
    os.makedirs(img_dir, exist_ok=True)
    manifest = []
    for scene in scenes:
        data = render(scene)
        path = os.path.join(img_dir, scene.file_name)
        with open(path, "wb") as f:
            f.write(data)
        manifest.append({
            "file": os.path.join(image_subdir, scene.file_name) if image_subdir else scene.file_name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "width": scene.width,
            "height": scene.height,
            "objects": [[o.color, o.shape, o.size, o.position] for o in scene.objects],
        })
    with open(os.path.join(out_dir, "images.jsonl"), "w") as f:
        for m in manifest:
            f.write(json.dumps(m) + "\n")
    questions = split_questions(split, scenes)
    for q in questions:
        q["images"] = [os.path.join(image_subdir, n) if image_subdir else n for n in q["images"]]
    if questions:
        with open(os.path.join(out_dir, "questions.jsonl"), "w") as f:
            for q in questions:
                f.write(json.dumps(q) + "\n")
    return manifest, questions


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", required=True, choices=SPLIT_ORDER)
    parser.add_argument("--out", help="output folder (default out/data/<split>)")
    parser.add_argument("--flat", action="store_true", help="images next to questions.jsonl, no images/ folder")
    args = parser.parse_args()
    out = args.out or os.path.join("out", "data", args.split)
    manifest, questions = write_split(args.split, out, image_subdir="" if args.flat else "images")
    print(f"{args.split}: {len(manifest)} images, {len(questions)} questions -> {out}")


if __name__ == "__main__":
    main()
