"""A tiny LLaVA (CLIP ViT, mlp2x_gelu projector, LLaMA with GQA and RoPE) and the two VoCo passes.

The passes are exactly those of Schemas/model-format.md:
- compression, one causal sequence per image: `voco` [BOS][patches][<voco> x k] keeps the k VoCo
  rows; `full` [BOS][patches] keeps every row; `avgpool` [BOS][mean of projected patches] keeps
  that one row. For every layer the cache holds K before RoPE and V of the kept rows.
- query: text (no BOS) attends to the caches of its images placed in the `sequential` layout
  (image j's rows at base + j*P' + r, base = the first kept row's position in compression) and
  causally to earlier text; RoPE is applied to cached K at its placed position.
Module and parameter names follow Hugging Face's CLIP and LLaMA, so export is a renaming.
"""

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

MODES = ("voco", "full", "avgpool", "text-only")

# MARK: - Configuration


@dataclass
class VisionConfig:
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    image_size: int = 64
    patch_size: int = 8
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"

    @property
    def num_patches(self):
        return (self.image_size // self.patch_size) ** 2


@dataclass
class TextConfig:
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    vocab_size: int = 482
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = False

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads


@dataclass
class ModelConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    mode: str = "voco"
    num_voco: int = 1  # k
    select_layer: int = -2
    bos_id: int = 1
    eos_id: int = 2
    voco_id: int = 481

    def to_dict(self):
        return asdict(self)

    @staticmethod
    def from_dict(d):
        d = dict(d)
        d["vision"] = VisionConfig(**d["vision"])
        d["text"] = TextConfig(**d["text"])
        return ModelConfig(**d)

    @property
    def kept_rows(self):
        """P': cache rows per image."""
        return {"voco": self.num_voco, "full": 1 + self.vision.num_patches, "avgpool": 1, "text-only": 0}[self.mode]

    @property
    def first_position(self):
        """Position of the first kept row in the compression pass (the layout's base)."""
        return {"voco": 1 + self.vision.num_patches, "full": 0, "avgpool": 1, "text-only": 0}[self.mode]


# MARK: - CLIP vision tower


class CLIPAttention(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.q_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.k_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.v_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.out_proj = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x):  # x: [N,T,vHidden]
        n, t, d = x.shape
        q, k, v = (p(x).view(n, t, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        o = F.scaled_dot_product_attention(q, k, v)  # [N,heads,T,headDim], full (non-causal) attention
        return self.out_proj(o.transpose(1, 2).reshape(n, t, d))


class CLIPMLP(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu


class CLIPEncoderLayer(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.self_attn = CLIPAttention(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = CLIPMLP(c)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(c.hidden_size))
        self.patch_embedding = nn.Conv2d(3, c.hidden_size, c.patch_size, stride=c.patch_size, bias=False)
        self.position_embedding = nn.Embedding(1 + c.num_patches, c.hidden_size)

    def forward(self, pixels):  # pixels: [N,3,S,S]
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)  # [N,P,vHidden]
        cls = self.class_embedding.expand(patches.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight  # [N,1+P,vHidden]


def sincos_positions(c: VisionConfig, scale=0.5):
    """[1+P,vHidden] 2-D sine-cosine position table (MAE-style), the class token's row zero. Used
    to initialise the learned positions: with CLIP's default (normal, std 0.02) a tiny ViT trained
    from scratch hardly tells patches apart and learns many times slower."""
    side, dim = c.image_size // c.patch_size, c.hidden_size
    y, x = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                          indexing="ij")
    omega = 1.0 / (100.0 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    parts = [f(coord.flatten()[:, None] * omega[None]) for coord in (y, x) for f in (torch.sin, torch.cos)]
    return torch.cat([torch.zeros(1, dim), torch.cat(parts, dim=1)], dim=0) * scale


class CLIPEncoder(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(c) for _ in range(c.num_hidden_layers))


class CLIPVisionTransformer(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.embeddings = CLIPEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.encoder = CLIPEncoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)  # exported, never used

    def hidden_state(self, pixels, select_layer):
        """hidden_states[select_layer]: [N,1+P,vHidden]; layers after it are not run."""
        stop = select_layer % (len(self.encoder.layers) + 1)
        h = self.pre_layrnorm(self.embeddings(pixels))
        for layer in self.encoder.layers[:stop]:
            h = layer(h)
        return h


# MARK: - LLaMA decoder


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_cos_sin(positions, head_dim, theta):
    """positions [B,T] -> cos, sin [B,1,T,headDim] (Hugging Face's rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq  # [B,T,headDim/2]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos()[:, None], emb.sin()[:, None]


def apply_rope(x, cos, sin):  # x: [B,heads,T,headDim]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class LlamaAttention(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, c.hidden_size, bias=False)


class LlamaMLP(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, c: TextConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = LlamaAttention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = LlamaMLP(c)
        self.theta = c.rope_theta

    def kv(self, h):
        """K before RoPE and V of hidden states h [B,T,hidden]: [B,T,kvHeads*headDim] each."""
        x = self.input_layernorm(h)
        return self.self_attn.k_proj(x), self.self_attn.v_proj(x)

    def forward(self, h, positions, past_k=None, past_v=None, past_positions=None, mask=None):
        """One layer. h [B,T,hidden] at positions [B,T]; past_k/past_v [B,C,kvHeads*headDim]
        (K before RoPE) at past_positions [B,C]; mask [B,1,T,C+T] additive, or None for causal
        attention without a past. Returns (h, k, v) with this call's K before RoPE and V."""
        a = self.self_attn
        b, t, _ = h.shape
        x = self.input_layernorm(h)
        q, k, v = a.q_proj(x), a.k_proj(x), a.v_proj(x)
        keys, values, key_positions = k, v, positions
        if past_k is not None:
            keys, values = torch.cat([past_k, k], dim=1), torch.cat([past_v, v], dim=1)
            key_positions = torch.cat([past_positions, positions], dim=1)
        q = q.view(b, t, a.heads, a.head_dim).transpose(1, 2)  # [B,heads,T,headDim]
        kk = keys.view(b, -1, a.kv_heads, a.head_dim).transpose(1, 2)  # [B,kvHeads,C+T,headDim]
        vv = values.view(b, -1, a.kv_heads, a.head_dim).transpose(1, 2)
        cos, sin = rope_cos_sin(positions, a.head_dim, self.theta)
        q = apply_rope(q, cos.to(q.dtype), sin.to(q.dtype))
        cos, sin = rope_cos_sin(key_positions, a.head_dim, self.theta)
        kk = apply_rope(kk, cos.to(kk.dtype), sin.to(kk.dtype))
        # grouped-query attention: query head i uses KV head i // (heads / kvHeads)
        if mask is None:
            o = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=True)
        else:
            o = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask.to(q.dtype), enable_gqa=True)
        h = h + a.o_proj(o.transpose(1, 2).reshape(b, t, -1))
        h = h + self.mlp(self.post_attention_layernorm(h))
        return h, k, v


# MARK: - The LLaVA model and the two passes


class TinyLlava(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        v, t = config.vision, config.text
        self.vision_model = CLIPVisionTransformer(v)
        self.mm_projector = nn.Sequential(nn.Linear(v.hidden_size, t.hidden_size), nn.GELU(),
                                          nn.Linear(t.hidden_size, t.hidden_size))
        self.embed_tokens = nn.Embedding(t.vocab_size, t.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(t) for _ in range(t.num_hidden_layers))
        self.norm = RMSNorm(t.hidden_size, t.rms_norm_eps)
        self.lm_head = nn.Linear(t.hidden_size, t.vocab_size, bias=False)
        self.apply(self._init)
        with torch.no_grad():
            self.vision_model.embeddings.position_embedding.weight.copy_(sincos_positions(v))
        for layer in self.layers:  # residual branches start small (GPT-2 style)
            for lin in (layer.self_attn.o_proj, layer.mlp.down_proj):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * len(self.layers)))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, CLIPEmbeddings):
            nn.init.normal_(m.class_embedding, std=0.02)

    # MARK: vision side

    def image_features(self, pixels):
        """pixels [N,3,S,S] -> (vision features [N,P,vHidden], projected [N,P,hidden])."""
        feats = self.vision_model.hidden_state(pixels, self.config.select_layer)[:, 1:]  # patch: drop CLS
        return feats, self.mm_projector(feats)

    # MARK: compression pass

    def compress(self, pixels, features=None):
        """Per-image caches: K (before RoPE), V [N,layers,P',kvHeads*headDim]. `features` (the vision
        features of the pixels, [N,P,vHidden]) skips the tower when they are known already."""
        c = self.config
        projected = self.mm_projector(features) if features is not None else self.image_features(pixels)[1]
        n = projected.shape[0]
        bos = self.embed_tokens.weight[c.bos_id].expand(n, 1, -1)
        if c.mode == "voco":
            voco = self.embed_tokens.weight[c.voco_id].expand(n, c.num_voco, -1)
            seq, keep = torch.cat([bos, projected, voco], dim=1), slice(-c.num_voco, None)
        elif c.mode == "full":
            seq, keep = torch.cat([bos, projected], dim=1), slice(0, None)
        elif c.mode == "avgpool":
            seq, keep = torch.cat([bos, projected.mean(dim=1, keepdim=True)], dim=1), slice(1, None)
        else:
            raise ValueError(f"mode {c.mode} has no compression pass")
        positions = torch.arange(seq.shape[1]).expand(n, -1)
        ks, vs, h = [], [], seq  # h: [N,T,hidden]
        for i, layer in enumerate(self.layers):
            if i == len(self.layers) - 1:  # the last layer's output is never used: only its K, V
                k, v = layer.kv(h[:, keep])
            else:
                h, k, v = layer(h, positions)
                k, v = k[:, keep], v[:, keep]
            ks.append(k)
            vs.append(v)
        return torch.stack(ks, dim=1), torch.stack(vs, dim=1)

    # MARK: query pass

    def place(self, cache_k, cache_v, image_index):
        """The `sequential` layout. cache_k/v [N,layers,P',kvd]; image_index [B,maxImages] (-1 = none,
        images in order, padding last). Returns per-layer K, V [layers][B,maxImages*P',kvd], their
        positions [B,maxImages*P'], validity [B,maxImages*P'], and each question's text start [B]."""
        c = self.config
        b, m = image_index.shape
        rows = c.kept_rows
        valid_img = image_index >= 0
        sel_k = cache_k[image_index.clamp(min=0)]  # [B,maxImages,layers,P',kvd]
        sel_v = cache_v[image_index.clamp(min=0)]
        layers = sel_k.shape[2]
        sel_k = sel_k.permute(2, 0, 1, 3, 4).reshape(layers, b, m * rows, -1)
        sel_v = sel_v.permute(2, 0, 1, 3, 4).reshape(layers, b, m * rows, -1)
        positions = c.first_position + torch.arange(m * rows).expand(b, -1)
        valid = valid_img.repeat_interleave(rows, dim=1)
        text_start = c.first_position + valid_img.sum(dim=1) * rows
        return sel_k, sel_v, positions, valid, text_start

    def query(self, text_ids, text_start, placed=None):
        """Logits [B,T,vocab] for text_ids [B,T] starting at text_start [B]; placed = the output of
        place() (None for text-only)."""
        b, t = text_ids.shape
        positions = text_start[:, None] + torch.arange(t)[None]
        h = self.embed_tokens(text_ids)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        if placed is None:
            allowed = causal.expand(b, t, t)
        else:
            _, _, _, valid, _ = placed
            allowed = torch.cat([valid[:, None, :].expand(b, t, -1), causal.expand(b, t, t)], dim=2)
        mask = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))[:, None]  # [B,1,T,C+T]
        for i, layer in enumerate(self.layers):
            if placed is None:
                h, _, _ = layer(h, positions, mask=mask)
            else:
                ks, vs, cache_positions, _, _ = placed
                h, _, _ = layer(h, positions, ks[i], vs[i], cache_positions, mask)
        return self.lm_head(self.norm(h))
