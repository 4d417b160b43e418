"""Checks an exported model directory against Hugging Face transformers.

Loads the exported weights into transformers' CLIPVisionModel + an mlp2x_gelu projector +
LlamaForCausalLM (eager attention) and compares with our model (model.py) on the same weights:
  - the exported tokenizer and image processor, loaded by transformers, against ours;
  - vision features (hidden_states[mm_vision_select_layer], patches) and projector output;
  - the compression pass: every layer's K (before RoPE) and V of the kept rows, taken by hooks
    on the reference's k_proj/v_proj;
  - one image, query pass against ONE reference forward over [BOS][patches][<voco> x k][text]
    with the VoCo mask as a 4-D float mask (text sees keys from the first VoCo token on);
    `full`: the plain causal forward [BOS][patches][text]; `avgpool`: [BOS][mean][text] with
    text not seeing BOS; text-only: the plain forward of the text at positions 0..;
  - three images in the `sequential` layout: the reference's own pre-RoPE K rotated with its
    rotary embedding at the placed positions into a DynamicCache, then its forward over the text.
Prints the max abs difference of each and fails above --tol. With --expected FILE, also writes
the tensors of these checks (the names of the Swift debug commands) as safetensors.

    python Tools/demo/check_export.py out/models/voco-k1 --images out/data/test
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: spinning OpenMP threads starve each other

import argparse
import json
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from transformers import (AutoImageProcessor, AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, DynamicCache,
                          LlamaConfig, LlamaForCausalLM)
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

import pixels as pix
import qa
import shapes
from export import TOWER, load_exported

# MARK: - The reference, built from transformers


def reference(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    weights = {n: t.float() for n, t in weights.items()}
    llama_cfg = LlamaConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"], rms_norm_eps=cfg["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": cfg["rope_theta"]},
        max_position_embeddings=cfg["max_position_embeddings"], tie_word_embeddings=cfg["tie_word_embeddings"],
        bos_token_id=cfg["bos_token_id"], eos_token_id=cfg["eos_token_id"], attn_implementation="eager",
    )
    llama = LlamaForCausalLM(llama_cfg).eval()
    llama.load_state_dict({n: t for n, t in weights.items()
                           if n.startswith(("model.embed_tokens", "model.layers.", "model.norm", "lm_head"))})
    if cfg["model_type"] == "llama":
        return cfg, llama, None, None
    vcfg = CLIPVisionConfig(**{k: v for k, v in cfg["vision_config"].items() if k != "model_type"},
                            attn_implementation="eager")
    tower = CLIPVisionModel(vcfg).eval()  # transformers 5: parameter names without "vision_model."
    tower.load_state_dict({n[len(TOWER):]: t for n, t in weights.items() if n.startswith(TOWER)})
    hidden = cfg["hidden_size"]
    projector = nn.Sequential(nn.Linear(cfg["mm_hidden_size"], hidden), nn.GELU(), nn.Linear(hidden, hidden)).eval()
    projector.load_state_dict({n[len("model.mm_projector."):]: t for n, t in weights.items()
                               if n.startswith("model.mm_projector.")})
    return cfg, llama, tower, projector


def ref_compress(cfg, llama, projector_out):
    """Reference compression pass of one image: per-layer (K before RoPE, V) of the kept rows."""
    voco, emb = cfg["voco"], llama.model.embed_tokens.weight
    bos = emb[cfg["bos_token_id"]][None]
    if voco["mode"] == "voco":
        seq = torch.cat([bos, projector_out, emb[voco["token_id"]][None].expand(voco["num_tokens"], -1)])
        keep = slice(-voco["num_tokens"], None)
    elif voco["mode"] == "full":
        seq, keep = torch.cat([bos, projector_out]), slice(0, None)
    else:
        seq, keep = torch.cat([bos, projector_out.mean(0, keepdim=True)]), slice(1, None)
    captured = {}
    hooks = []
    for i, layer in enumerate(llama.model.layers):
        for name in ("k_proj", "v_proj"):
            hooks.append(getattr(layer.self_attn, name).register_forward_hook(
                lambda m, inp, out, key=(i, name): captured.__setitem__(key, out[0])))
    with torch.no_grad():
        llama(inputs_embeds=seq[None])
    for h in hooks:
        h.remove()
    layers = len(llama.model.layers)
    k = torch.stack([captured[(i, "k_proj")][keep] for i in range(layers)])  # [layers,P',kvd]
    v = torch.stack([captured[(i, "v_proj")][keep] for i in range(layers)])
    return seq, k, v


def ref_single_pass(cfg, llama, seq, text_ids):
    """One forward over the compression sequence followed by the text, with the mode's mask."""
    mode, t = cfg["voco"]["mode"], len(text_ids)
    embeds = torch.cat([seq, llama.model.embed_tokens.weight[text_ids]])
    n = embeds.shape[0]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()
    first_text = n - t
    first_visible = {"voco": seq.shape[0] - cfg["voco"]["num_tokens"], "full": 0, "avgpool": 1}[mode]
    allowed[first_text:, :first_visible] = False  # make_voco_mask_llava
    mask = torch.zeros(n, n).masked_fill(~allowed, float("-inf"))[None, None]
    with torch.no_grad():
        return llama(inputs_embeds=embeds[None], attention_mask=mask).logits[0, first_text:]


def ref_placed_query(cfg, llama, caches, first_position, text_ids):
    """Text over caches placed in the `sequential` layout, through the reference's DynamicCache."""
    layers = len(llama.model.layers)
    kvh, hd = cfg["num_key_value_heads"], cfg["head_dim"]
    k = torch.cat([c[0] for c in caches], dim=1)  # [layers,C,kvd]
    v = torch.cat([c[1] for c in caches], dim=1)
    count = k.shape[1]
    positions = torch.arange(first_position, first_position + count)[None]
    cos, sin = llama.model.rotary_emb(k, positions)
    cache = DynamicCache(config=llama.config)
    for i in range(layers):
        ki = k[i].view(count, kvh, hd).transpose(0, 1)[None]  # [1,kvHeads,C,headDim]
        vi = v[i].view(count, kvh, hd).transpose(0, 1)[None]
        ki, _ = apply_rotary_pos_emb(ki, ki, cos, sin)
        cache.update(ki, vi, i)
    t = len(text_ids)
    allowed = torch.cat([torch.ones(t, count, dtype=torch.bool), torch.ones(t, t, dtype=torch.bool).tril()], dim=1)
    mask = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))[None, None]
    text_positions = torch.arange(first_position + count, first_position + count + t)[None]
    with torch.no_grad():
        out = llama(input_ids=torch.tensor([text_ids]), position_ids=text_positions, cache=cache,
                    attention_mask=mask)
    return out.logits[0]


# MARK: - Checks


def run_checks(model_dir, images_dir, questions, tol, expected_path=None):
    cfg, llama, tower, projector = reference(model_dir)
    ours, _ = load_exported(model_dir)
    codec = qa.TextCodec(os.path.join(model_dir, "tokenizer.json"), cfg["voco"]["prompt_template"])
    results, expected = {}, {}

    def compare(name, a, b):
        results[name] = float((a - b).abs().max())
        print(f"{name:32s} max abs diff {results[name]:.2e}  shape {list(a.shape)}")

    hf_tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = [cfg["voco"]["prompt_template"].format(question=q["question"]) for q in questions]
    mismatched = sum(hf_tok(p, add_special_tokens=False).input_ids != codec.prompt_ids(q["question"])
                     for p, q in zip(prompts, questions))
    print(f"tokenizer (AutoTokenizer vs ours) {mismatched} of {len(prompts)} prompts differ")
    results["tokenizer mismatches"] = float(mismatched)
    text_ids = codec.prompt_ids(questions[0]["question"]) + codec.answer_ids(questions[0]["answer"])

    if ours.config.mode == "text-only":
        with torch.no_grad():
            got = ours.query(torch.tensor([text_ids]), torch.zeros(1, dtype=torch.long))[0]
            want = llama(input_ids=torch.tensor([text_ids])).logits[0]
        compare("query logits (text only)", got, want)
        return results

    files = [f for q in questions for f in q["images"]][:3]
    processor = AutoImageProcessor.from_pretrained(model_dir)
    pixel_list = [torch.from_numpy(pix.pixel_values(os.path.join(images_dir, f), processor)) for f in files]
    pixels = torch.stack(pixel_list)  # [3,3,S,S]
    ours_processor = pix.make_processor(ours.config.vision.image_size)
    compare("pixel_values (exported processor)", pixels,
            torch.stack([torch.from_numpy(pix.pixel_values(os.path.join(images_dir, f), ours_processor))
                         for f in files]))
    with torch.no_grad():
        hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states
        ref_feats = hidden[cfg["mm_vision_select_layer"]][:, 1:]
        ref_proj = projector(ref_feats)
        feats, proj = ours.image_features(pixels)
        compare("vision_features", feats, ref_feats)
        compare("projected", proj, ref_proj)
        cache_k, cache_v = ours.compress(pixels)  # [N,layers,P',kvd]
        ref = [ref_compress(cfg, llama, ref_proj[i]) for i in range(len(files))]
        compare("voco_k (before RoPE)", cache_k, torch.stack([r[1] for r in ref]))
        compare("voco_v", cache_v, torch.stack([r[2] for r in ref]))

        one = ours.place(cache_k, cache_v, qa.image_index([[0]]))
        got_one = ours.query(torch.tensor([text_ids]), one[4], one)[0]
        want_one = ref_single_pass(cfg, llama, ref[0][0], text_ids)
        compare("1 image: query vs single pass", got_one, want_one)
        three = ours.place(cache_k, cache_v, qa.image_index([[0, 1, 2]]))
        got_three = ours.query(torch.tensor([text_ids]), three[4], three)[0]
        want_three = ref_placed_query(cfg, llama, [(r[1], r[2]) for r in ref], ours.config.first_position, text_ids)
        compare("3 images sequential: query", got_three, want_three)
    if expected_path:
        save_file({"pixel_values": pixels.contiguous(), "vision_features": ref_feats.contiguous(),
                   "projected": ref_proj.contiguous(), "voco_k": torch.stack([r[1] for r in ref]).contiguous(),
                   "voco_v": torch.stack([r[2] for r in ref]).contiguous(),
                   "text_ids": torch.tensor(text_ids, dtype=torch.int64),
                   "logits_1_image": want_one.contiguous(),
                   "logits_3_images": want_three.contiguous()},
                  expected_path, metadata={"images": json.dumps(files)})
        print(f"expected tensors -> {expected_path}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--images", default="out/data/test", help="a split folder with questions.jsonl")
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--expected", help="write the checked tensors here (safetensors)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    questions = shapes.load_questions(args.images)
    multi = [q for q in questions if len(q["images"]) >= 3][:1]
    results = run_checks(args.model_dir, args.images, multi + questions[:200], args.tol, args.expected)
    worst = max(v for k, v in results.items() if k != "tokenizer mismatches")
    ok = worst <= args.tol and results["tokenizer mismatches"] == 0
    print(f"{'PASS' if ok else 'FAIL'}: worst max abs diff {worst:.2e} (tolerance {args.tol:.0e})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
