"""Questions as model inputs: tokenising, batching with targets, and greedy answering."""

import torch
from tokenizers import Tokenizer

from shapes import PROMPT_TEMPLATE

MAX_IMAGES = 4
IGNORE = -100


class TextCodec:
    """The prompt template and tokenizer, exactly as the Swift query pass applies them: the template
    filled with the question, tokenised without BOS; the answer follows and ends with EOS."""

    def __init__(self, tokenizer_path, template=PROMPT_TEMPLATE):
        self.tok = Tokenizer.from_file(tokenizer_path)
        self.template = template
        self.bos_id = self.tok.token_to_id("<s>")
        self.eos_id = self.tok.token_to_id("</s>")
        self.pad_id = self.tok.token_to_id("<pad>")
        self.voco_id = self.tok.token_to_id("<voco>")
        self._cache = {}

    def _encode(self, text):
        ids = self._cache.get(text)
        if ids is None:
            ids = self._cache[text] = self.tok.encode(text, add_special_tokens=False).ids
        return ids

    def prompt_ids(self, question):
        return self._encode(self.template.format(question=question))

    def answer_ids(self, answer):
        return self._encode(answer) + [self.eos_id]

    def decode(self, ids):
        return self.tok.decode([i for i in ids if i != self.eos_id], skip_special_tokens=True).strip()


def image_index(image_lists):
    """Per-question image lists (indices into one batch of pixels) -> [B,most images], -1 = none."""
    width = max(1, max(len(images) for images in image_lists))
    assert width <= MAX_IMAGES, f"a question over {width} images (at most {MAX_IMAGES})"
    index = torch.full((len(image_lists), width), -1, dtype=torch.long)
    for b, images in enumerate(image_lists):
        index[b, : len(images)] = torch.tensor(images, dtype=torch.long)
    return index


def gather_images(pool_indices_per_question):
    """Deduplicates pool images over a batch: (unique pool indices, per-question local lists)."""
    unique, local = {}, []
    for images in pool_indices_per_question:
        local.append([unique.setdefault(i, len(unique)) for i in images])
    return list(unique), local


def training_batch(codec, items):
    """items: (local image list, question, answer). Returns image_index [B,4], text ids [B,T] and
    targets [B,T] (the next token where it belongs to the answer or its EOS, else IGNORE)."""
    seqs, starts = [], []
    for _, question, answer in items:
        prompt = codec.prompt_ids(question)
        seqs.append(prompt + codec.answer_ids(answer))
        starts.append(len(prompt))
    t = max(len(s) for s in seqs) - 1
    ids = torch.full((len(items), t), codec.pad_id, dtype=torch.long)
    targets = torch.full((len(items), t), IGNORE, dtype=torch.long)
    for b, (s, start) in enumerate(zip(seqs, starts)):
        ids[b, : len(s) - 1] = torch.tensor(s[:-1])
        targets[b, start - 1 : len(s) - 1] = torch.tensor(s[start:])
    return image_index([images for images, _, _ in items]), ids, targets


@torch.no_grad()
def greedy_answers(model, codec, pixels, image_lists, questions, max_new_tokens=8):  # = voco eval's default
    """Greedy decoding. pixels [N,3,S,S] float32; image_lists: per question, indices into pixels.
    Returns per question (generated ids, ending with EOS when produced; smallest top-1 minus top-2
    logit margin over the generated steps)."""
    b = len(questions)
    if model.config.mode == "text-only":
        placed, text_start = None, torch.zeros(b, dtype=torch.long)
    else:
        cache_k, cache_v = model.compress(pixels)
        placed = model.place(cache_k, cache_v, image_index(image_lists))
        text_start = placed[4]
    seqs = [list(codec.prompt_ids(q)) for q in questions]
    generated = [[] for _ in range(b)]
    margins = [float("inf")] * b
    done = [False] * b
    for _ in range(max_new_tokens):
        lengths = torch.tensor([len(s) for s in seqs])
        ids = torch.full((b, int(lengths.max())), codec.pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
        logits = model.query(ids, text_start, placed)
        last = logits[torch.arange(b), lengths - 1].float()  # [B,vocab]
        top = last.topk(2, dim=-1)
        for i in range(b):
            if done[i]:
                continue
            token = int(top.indices[i, 0])
            margins[i] = min(margins[i], float(top.values[i, 0] - top.values[i, 1]))
            generated[i].append(token)
            seqs[i].append(token)
            done[i] = token == codec.eos_id
        if all(done):
            break
    return list(zip(generated, margins))


def answer_questions(model, codec, pixels_for, questions, batch_size=128):
    """questions: dicts with "images" (keys for pixels_for) and "question". pixels_for(keys) ->
    [N,3,S,S] float32 (None for a text-only model). Returns per question (answer text, ids, margin)."""
    results = []
    for start in range(0, len(questions), batch_size):
        chunk = questions[start : start + batch_size]
        unique, local = gather_images([q["images"] for q in chunk])
        pixels = pixels_for(unique) if pixels_for and unique else None  # text-only: no pixels
        for ids, margin in greedy_answers(model, codec, pixels, local, [q["question"] for q in chunk]):
            results.append((codec.decode(ids), ids, margin))
    return results


def accuracy_by_type(questions, answers, types):
    """{type: (correct, total)} plus "overall"."""
    table = {t: [0, 0] for t in types}
    table["overall"] = [0, 0]
    for q, a in zip(questions, answers):
        for key in (q["type"], "overall"):
            table[key][0] += int(a == q["answer"])
            table[key][1] += 1
    return {k: tuple(v) for k, v in table.items()}


def format_accuracy(table):
    return " ".join(f"{k}={c / n:.3f}" for k, (c, n) in table.items() if n)

