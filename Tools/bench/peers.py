"""The peers of `voco-bench engine` in Tools/bench/engine.sh, on the same random model.

    peers.py gguf   MODEL_DIR OUT.gguf         the model directory's language model as GGUF F16
    peers.py llama  OUT.gguf  --prompt N ...   llama.cpp (llama-cpp-python): prefill and decode tokens/s
    peers.py torch  MODEL_DIR --prompt N ...   PyTorch F32 (transformers LlamaForCausalLM, eager)
    peers.py table  RESULTS_DIR                the one table of every JSON the run wrote

Each measuring command writes one JSON object (tokens/s, peak RSS) to --json. The weights are
the same bytes as the model directory's (a speed benchmark: llama.cpp's rotary convention
differs from Hugging Face's, so its outputs are not compared).
"""
import argparse
import json
import os
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)  # transformers renaming past_key_values


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


# MARK: - GGUF


def write_gguf(model_dir, out):
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    c = load_config(model_dir)
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    h, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    heads, kv_heads = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_name("voco-bench random")
    writer.add_context_length(c.get("max_position_embeddings", 2048))
    writer.add_embedding_length(h)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(c["intermediate_size"])
    writer.add_rope_dimension_count(h // heads)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(c.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base(c.get("rope_theta", 10000.0))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    # A vocabulary of the right size: <unk> <s> </s>, the 256 byte tokens, then plain pieces.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581t{i}" for i in range(vocab - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    types += [gguf.TokenType.NORMAL] * (vocab - len(types))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    def half(name):
        return tensors[name].astype(np.float16)

    def single(name):
        return tensors[name].astype(np.float32)

    writer.add_tensor("token_embd.weight", half("model.embed_tokens.weight"))
    for i in range(layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        writer.add_tensor(b + "attn_norm.weight", single(p + "input_layernorm.weight"))
        writer.add_tensor(b + "attn_q.weight", half(p + "self_attn.q_proj.weight"))
        writer.add_tensor(b + "attn_k.weight", half(p + "self_attn.k_proj.weight"))
        writer.add_tensor(b + "attn_v.weight", half(p + "self_attn.v_proj.weight"))
        writer.add_tensor(b + "attn_output.weight", half(p + "self_attn.o_proj.weight"))
        writer.add_tensor(b + "ffn_norm.weight", single(p + "post_attention_layernorm.weight"))
        writer.add_tensor(b + "ffn_gate.weight", half(p + "mlp.gate_proj.weight"))
        writer.add_tensor(b + "ffn_up.weight", half(p + "mlp.up_proj.weight"))
        writer.add_tensor(b + "ffn_down.weight", half(p + "mlp.down_proj.weight"))
    writer.add_tensor("output_norm.weight", single("model.norm.weight"))
    writer.add_tensor("output.weight", half("lm_head.weight"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{out}: {os.path.getsize(out) / 1e9:.2f} GB")


# MARK: - Measurements


def prompt_ids(n, vocab):
    return [3 + i % (vocab - 4) for i in range(n)]


def run_llama(args):
    if args.llama_path:
        sys.path.insert(0, args.llama_path)
    import llama_cpp

    llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.prompt + args.decode + 16, n_threads=args.threads,
                          n_threads_batch=args.threads, n_batch=args.prompt, n_ubatch=args.prompt, verbose=False)
    vocab = llm.n_vocab()
    ids = prompt_ids(args.prompt, vocab)
    best = float("inf")
    for _ in range(args.repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(args.decode):
        llm.eval([3 + i % (vocab - 4)])
    decode = (time.perf_counter() - start) / args.decode
    system = llama_cpp.llama_print_system_info().decode()
    return {"prefill_tokens_per_s": args.prompt / best, "decode_tokens_per_s": 1 / decode,
            "peak_rss_gb": peak_rss_gb(), "compute": f"llama.cpp {llama_cpp.__version__} ({system.strip()[:160]})"}


def run_torch(args):
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(args.threads)
    c = load_config(args.model)
    config = LlamaConfig(hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
                         num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
                         num_key_value_heads=c.get("num_key_value_heads"), vocab_size=c["vocab_size"],
                         rms_norm_eps=c.get("rms_norm_eps", 1e-6), rope_theta=c.get("rope_theta", 10000.0),
                         max_position_embeddings=c.get("max_position_embeddings", 2048), tie_word_embeddings=False,
                         attn_implementation="eager")
    weights = load_file(os.path.join(args.model, "model.safetensors"))
    state = {k: v.float() for k, v in weights.items() if k.startswith("model.layers.") or k in
             ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight")}
    del weights
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.load_state_dict(state, assign=True, strict=False)
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # buffers off the meta device
    model.eval()
    ids = torch.tensor([prompt_ids(args.prompt, c["vocab_size"])])
    with torch.inference_mode():
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = model(ids, use_cache=True)
            best = min(best, time.perf_counter() - start)
        cache = out.past_key_values
        start = time.perf_counter()
        for i in range(args.decode):
            out = model(torch.tensor([[3 + i % (c["vocab_size"] - 4)]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
        decode = (time.perf_counter() - start) / args.decode
    return {"prefill_tokens_per_s": args.prompt / best, "decode_tokens_per_s": 1 / decode, "peak_rss_gb": peak_rss_gb(),
            "compute": f"PyTorch {torch.__version__} F32, {torch.get_num_threads()} threads, "
                       f"{torch.backends.cpu.get_cpu_capability()}"}


# MARK: - The table


def table(results_dir):
    rows = []
    for name in sorted(os.listdir(results_dir)):
        if name.endswith(".json"):
            with open(os.path.join(results_dir, name)) as f:
                rows.append((name[:-5], json.load(f)))

    def cell(r, key, digits=1):
        return f"{r[key]:.{digits}f}" if key in r else ""

    print("| run | prefill tokens/s | decode tokens/s | compression images/s (GFLOP/s) | peak RSS GB | floors in the same run |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        compression = f"{r['compress_images_per_s']:.3f} ({r['compress_gflops']:.0f})" if "compress_images_per_s" in r else ""
        floors = []
        if "sgemm_gflops" in r:
            floors.append(f"sgemm {r['sgemm_gflops']:.0f} GFLOP/s")
        if "read_gbps" in r:
            floors.append(f"weight read {r['read_gbps']:.1f} GB/s = {r['read_tokens_per_s']:.1f} tokens/s")
        print(f"| {name} | {cell(r, 'prefill_tokens_per_s')} | {cell(r, 'decode_tokens_per_s', 2)} | {compression} | "
              f"{cell(r, 'peak_rss_gb', 2)} | {'; '.join(floors)} |")
    print()
    for name, r in rows:
        print(f"{name}: {r.get('compute', '')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gguf")
    g.add_argument("model_dir")
    g.add_argument("out")
    for name in ("llama", "torch"):
        p = sub.add_parser(name)
        p.add_argument("model")
        p.add_argument("--prompt", type=int, default=512)
        p.add_argument("--decode", type=int, default=32)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--repeats", type=int, default=2)
        p.add_argument("--json", required=True)
        if name == "llama":
            p.add_argument("--llama-path", help="a folder holding another build of llama_cpp (e.g. AVX2 only)")
    t = sub.add_parser("table")
    t.add_argument("results_dir")
    args = parser.parse_args()
    if args.command == "gguf":
        write_gguf(args.model_dir, args.out)
    elif args.command == "table":
        table(args.results_dir)
    else:
        result = run_llama(args) if args.command == "llama" else run_torch(args)
        with open(args.json, "w") as f:
            json.dump(result, f, sort_keys=True)
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
