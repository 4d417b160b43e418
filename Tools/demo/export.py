"""Exports a trained checkpoint as a model directory (Schemas/model-format.md) and loads one back.

    python Tools/demo/export.py out/runs/voco-k1/checkpoint.pt out/models/voco-k1 [--dtype F16]

Writes config.json (model_type llava_llama; `llama` for the text-only lower bound, which has no
vision side), model.safetensors with LLaVA tensor names (the CLIP tower inside, under
model.vision_tower.vision_tower.vision_model.), tokenizer.json, tokenizer_config.json and
preprocessor_config.json.
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

import pixels as pix
from shapes import MAX_IMAGES_PER_QUESTION
from model import ModelConfig, TextConfig, TinyLlava, VisionConfig

TOWER = "model.vision_tower.vision_tower.vision_model."
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

# MARK: - Names


def llava_name(name):
    """Our parameter name -> the LLaVA checkpoint name."""
    if name.startswith("vision_model."):
        return TOWER + name[len("vision_model."):]
    if name.startswith("lm_head."):
        return name
    return "model." + name  # mm_projector.*, embed_tokens, layers.N.*, norm


def our_name(name):
    if name.startswith(TOWER):
        return "vision_model." + name[len(TOWER):]
    if name.startswith("model."):
        return name[len("model."):]
    return name


# MARK: - config.json


def config_json(c: ModelConfig, template, dtype):
    t, v = c.text, c.vision
    text_only = c.mode == "text-only"
    cfg = {
        "architectures": ["LlamaForCausalLM" if text_only else "LlavaLlamaForCausalLM"],
        "model_type": "llama" if text_only else "llava_llama",
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "num_key_value_heads": t.num_key_value_heads,
        "head_dim": t.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": t.rope_theta,
        "rope_scaling": None,
        "max_position_embeddings": t.max_position_embeddings,
        "vocab_size": t.vocab_size,
        "tie_word_embeddings": t.tie_word_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": c.bos_id,
        "eos_token_id": c.eos_id,
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype],
    }
    voco = {"prompt_template": template}
    if not text_only:
        cfg.update({
            "mm_vision_tower": "shapes-clip-vit-tiny",
            "mm_hidden_size": v.hidden_size,
            "mm_projector_type": "mlp2x_gelu",
            "mm_vision_select_layer": c.select_layer,
            "mm_vision_select_feature": "patch",
            "mm_use_im_start_end": False,
            "mm_use_im_patch_token": False,
            "image_aspect_ratio": "pad",
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": v.hidden_size,
                "intermediate_size": v.intermediate_size,
                "num_hidden_layers": v.num_hidden_layers,
                "num_attention_heads": v.num_attention_heads,
                "image_size": v.image_size,
                "patch_size": v.patch_size,
                "num_channels": 3,
                "layer_norm_eps": v.layer_norm_eps,
                "hidden_act": v.hidden_act,
            },
        })
        voco = {"token_id": c.voco_id, "num_tokens": c.num_voco, "mode": c.mode, "layout": "sequential",
                "compression_prefix_ids": [], "prompt_template": template, "max_images": MAX_IMAGES_PER_QUESTION}
    cfg["voco"] = voco
    return cfg


def model_config_from_json(cfg):
    """config.json -> ModelConfig (what evaluate.py and check_export.py run)."""
    voco = cfg.get("voco", {})
    text = TextConfig(
        hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
        rms_norm_eps=cfg["rms_norm_eps"], rope_theta=cfg.get("rope_theta", 10000.0),
        vocab_size=cfg["vocab_size"], max_position_embeddings=cfg["max_position_embeddings"],
        tie_word_embeddings=cfg.get("tie_word_embeddings", False),
    )
    if cfg["model_type"] == "llama":
        return ModelConfig(text=text, mode="text-only", bos_id=cfg["bos_token_id"], eos_id=cfg["eos_token_id"])
    vc = cfg["vision_config"]
    vision = VisionConfig(**{f: vc[f] for f in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                 "num_attention_heads", "image_size", "patch_size",
                                                 "layer_norm_eps", "hidden_act")})
    return ModelConfig(vision=vision, text=text, mode=voco["mode"], num_voco=voco["num_tokens"],
                       select_layer=cfg.get("mm_vision_select_layer", -2), bos_id=cfg["bos_token_id"],
                       eos_id=cfg["eos_token_id"], voco_id=voco["token_id"])


# MARK: - Export and load


def export(checkpoint_path, out_dir, dtype="F32"):
    ck = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    config = ModelConfig.from_dict(ck["config"])
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for name, value in ck["state_dict"].items():
        if config.mode == "text-only" and name.startswith(("vision_model.", "mm_projector.")):
            continue  # the lower bound never sees an image
        tensors[llava_name(name)] = value.to(DTYPES[dtype]).contiguous()
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config_json(config, ck["prompt_template"], dtype), f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(ck["tokenizer"], name), os.path.join(out_dir, name))
    if config.mode != "text-only":
        pix.make_processor(config.vision.image_size).save_pretrained(out_dir)
    return config


def load_exported(model_dir):
    """(TinyLlava in float32 with the exported weights, widened if half precision; config.json dict)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = TinyLlava(model_config_from_json(cfg))
    weights = {our_name(n): t.float() for n, t in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if model.config.mode == "text-only":
        missing = [n for n in missing if not n.startswith(("vision_model.", "mm_projector."))]
    if missing or unexpected:
        raise ValueError(f"{model_dir}: missing {missing}, unexpected {unexpected}")
    return model.eval(), cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--dtype", choices=list(DTYPES), default="F32")
    args = parser.parse_args()
    config = export(args.checkpoint, args.out, args.dtype)
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(f"exported {config.mode} (k {config.num_voco}) as {args.dtype}: {size / 1e6:.2f} MB -> {args.out}")


if __name__ == "__main__":
    main()
