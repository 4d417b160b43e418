"""Greedy answers of an exported model on a split, accuracy per question type, and predictions.

    python Tools/demo/evaluate.py out/models/voco-k1 --split out/data/test
    python Tools/demo/evaluate.py --table out/models/{full,voco-k1,voco-k2,voco-k4,avgpool,text-only}

The model runs from the exported directory with the exported weights (half precision widened
to float32, computed in float32), images through the reference preprocessing from their files
and the exported preprocessor_config.json. Writes <model>/predictions-<split>.json:
{"accuracy": {type: [correct, total]}, "predictions": {question id: {"answer", "ids", "margin",
"correct"}}}, where ids are the generated token ids (ending with EOS when produced) and margin
is the smallest top-1 minus top-2 logit gap over the generated tokens (small margins are where
another implementation may legitimately pick a different token). --table prints the markdown
table of several such files with retention = (x - lower) / (upper - lower), upper = `full`,
lower = text-only.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: spinning OpenMP threads starve each other

import argparse
import json
import time

import torch
from transformers import CLIPImageProcessorPil

import pixels as pix
import qa
import shapes
from export import load_exported


def evaluate(model_dir, split_dir, limit=None):
    model, cfg = load_exported(model_dir)
    codec = qa.TextCodec(os.path.join(model_dir, "tokenizer.json"), cfg["voco"]["prompt_template"])
    questions = shapes.load_questions(split_dir)[:limit]
    if model.config.mode == "text-only":
        pixels_for = None
    else:
        processor = CLIPImageProcessorPil.from_pretrained(model_dir)

        def pixels_for(files):
            return torch.stack([torch.from_numpy(pix.pixel_values(os.path.join(split_dir, f), processor))
                                for f in files])
    start = time.time()
    answers = qa.answer_questions(model, codec, pixels_for, questions)
    seconds = time.time() - start
    table = qa.accuracy_by_type(questions, [a for a, _, _ in answers], shapes.QUESTION_TYPES)
    predictions = {q["id"]: {"answer": a, "ids": ids, "margin": round(m, 4), "correct": a == q["answer"]}
                   for q, (a, ids, m) in zip(questions, answers)}
    return {"model": model_dir, "split": split_dir, "mode": model.config.mode, "k": model.config.num_voco,
            "seconds": round(seconds, 1), "accuracy": table, "predictions": predictions}


def percent(correct_total):
    c, n = correct_total
    return 100.0 * c / n


def table_markdown(paths):
    runs = []
    for p in paths:
        with open(p if p.endswith(".json") else os.path.join(p, "predictions-test.json")) as f:
            runs.append(json.load(f))
    by_mode = {r["mode"]: r for r in runs}
    upper, lower = by_mode.get("full"), by_mode.get("text-only")
    types = shapes.QUESTION_TYPES + ["overall"]
    lines = ["| variant | cache rows / image | " + " | ".join(types) + " | retention |",
             "|---" * (len(types) + 3) + "|"]
    for r in runs:
        name = os.path.basename(os.path.normpath(r["model"]))
        rows = {"voco": r["k"], "full": "1+P", "avgpool": 1, "text-only": 0}[r["mode"]]
        cells = [f"{percent(r['accuracy'][t]):.1f}" for t in types]
        retention = ""
        if upper and lower:
            up, low = percent(upper["accuracy"]["overall"]), percent(lower["accuracy"]["overall"])
            retention = f"{100 * (percent(r['accuracy']['overall']) - low) / (up - low):.1f}%"
        lines.append(f"| {name} | {rows} | " + " | ".join(cells) + f" | {retention} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="exported model directories (or predictions files with --table)")
    parser.add_argument("--split", default="out/data/test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--table", action="store_true", help="print the table of existing predictions files")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.table:
        print(table_markdown(args.models))
        return
    split_name = os.path.basename(os.path.normpath(args.split))
    for model_dir in args.models:
        result = evaluate(model_dir, args.split, args.limit)
        out = os.path.join(model_dir, f"predictions-{split_name}.json")
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        print(f"{model_dir} on {split_name} ({len(result['predictions'])} questions, {result['seconds']}s): "
              f"{qa.format_accuracy(result['accuracy'])} -> {out}")


if __name__ == "__main__":
    main()
