"""A LLaMA-style BPE for the shapes world, trained with `tokenizers`.

Layout as in LLaMA: <unk> 0, <s> 1, </s> 2, the 256 byte-fallback tokens <0x00>..<0xFF> at
3..258, then the trained pieces (every piece starts a word with ▁ or continues one), then the
added special tokens <pad>, <image>, <voco>. Normaliser Prepend("▁") + Replace(" ", "▁"), no
pre-tokeniser, decoder Replace/ByteFallback/Fuse/Strip, post-processor adding <s>: the layout
of Hugging Face's LLaMA-2 tokenizer.json.

    python Tools/demo/make_tokenizer.py --out out/tokenizer
"""

import argparse
import json
import os

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

import shapes

SPECIAL = ["<unk>", "<s>", "</s>"]
ADDED = ["<pad>", "<image>", "<voco>"]


def train_pieces(lines, vocab_size):
    """Word-level BPE pieces (merges never cross a ▁), as SentencePiece splits on whitespace."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], model["merges"]


def build(lines, vocab_size=320):
    trained_vocab, merges = train_pieces(lines, vocab_size)
    vocab = {name: i for i, name in enumerate(SPECIAL)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)
    ])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL + ADDED])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return tok


def tokenizer_config(max_length):
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "additional_special_tokens": ["<image>", "<voco>"],
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": max_length,
        "padding_side": "right",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def write(tok, out_dir, max_length=512):
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(max_length), f, indent=2)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/tokenizer")
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    tok = build(shapes.corpus_lines(args.lines))
    write(tok, args.out)
    ids = tok.encode(shapes.PROMPT_TEMPLATE.format(question="Which image has a red circle?")).ids
    print(f"vocab {tok.get_vocab_size()} -> {args.out}; example {ids} -> {tok.decode(ids)!r}")


if __name__ == "__main__":
    main()
