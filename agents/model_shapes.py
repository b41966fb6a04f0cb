"""Transformer shapes for the memory planner: parameter counts and KV-cache bytes from a Hugging Face config.

Shapes come from a local ``config.json`` (a file or a model folder) or from the small table below for the models
the recipe names, so the planner works offline. Counts are exact for Llama/Qwen2/Qwen3(-MoE) style decoders
(the planner's tests check them against ``sum(p.numel())`` of real models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Source of both entries: the models' config.json on huggingface.co (Qwen/Qwen3-4B-Instruct-2507 and
# Qwen/Qwen3-30B-A3B-Instruct-2507). The model cards state 4.0B params (3.6B non-embedding), 36 layers, 32 Q /
# 8 KV heads; and 30.5B total / 3.3B active (29.9B non-embedding), 48 layers, 32 Q / 4 KV heads, 128 experts,
# 8 active. The tests recompute those card figures from these shapes.
KNOWN_CONFIGS: dict[str, dict] = {
    "Qwen/Qwen3-4B-Instruct-2507": dict(
        model_type="qwen3", vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
        max_position_embeddings=262144),
    "Qwen/Qwen3-30B-A3B-Instruct-2507": dict(
        model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=48,
        num_attention_heads=32, num_key_value_heads=4, head_dim=128, tie_word_embeddings=False,
        num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768, max_position_embeddings=262144),
}


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory and FLOPs depend on."""

    name: str
    """Where the shape came from (table key or config path)."""
    vocab_size: int
    """Vocabulary size (rows of the embedding and of the LM head)."""
    hidden_size: int
    """Residual stream width h."""
    intermediate_size: int
    """Dense MLP width (SwiGLU: gate, up and down projections)."""
    num_layers: int
    """Decoder layers L."""
    num_heads: int
    """Query heads."""
    num_kv_heads: int
    """Key/value heads (GQA)."""
    head_dim: int
    """Width of one attention head."""
    tie_embeddings: bool
    """True when the LM head shares the embedding matrix."""
    qk_norm: bool = False
    """Qwen3's per-head RMSNorm on queries and keys (2 x head_dim weights per layer)."""
    attention_bias: bool = False
    """Biases on the q/k/v projections (Qwen2)."""
    num_experts: int = 0
    """MoE experts per layer (0 = dense MLP)."""
    experts_per_token: int = 0
    """Experts each token is routed to."""
    moe_intermediate_size: int = 0
    """Width of one expert's MLP."""
    max_position_embeddings: int = 0
    """The model's native context (vLLM's default max_model_len)."""

    @classmethod
    def from_config(cls, cfg: dict, name: str = "config") -> "ModelShape":
        """Read a Hugging Face config dict; raises ValueError naming the first missing key."""
        try:
            h, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
            return cls(
                name=name, vocab_size=int(cfg["vocab_size"]), hidden_size=h,
                intermediate_size=int(cfg["intermediate_size"]), num_layers=int(cfg["num_hidden_layers"]),
                num_heads=heads, num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
                head_dim=int(cfg.get("head_dim") or h // heads),
                tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                qk_norm=str(cfg.get("model_type", "")).startswith("qwen3"),
                attention_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
                num_experts=int(cfg.get("num_experts") or 0),
                experts_per_token=int(cfg.get("num_experts_per_tok") or 0),
                moe_intermediate_size=int(cfg.get("moe_intermediate_size") or 0),
                max_position_embeddings=int(cfg.get("max_position_embeddings") or 0))
        except KeyError as e:
            raise ValueError(f"{name}: config has no {e.args[0]!r}") from None

    # ----- parameter counts -------------------------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def attention_params(self) -> int:
        h = self.hidden_size
        n = 2 * h * self.q_dim + 2 * h * self.kv_dim
        if self.attention_bias:
            n += self.q_dim + 2 * self.kv_dim
        if self.qk_norm:
            n += 2 * self.head_dim
        return n

    def mlp_params(self, active: bool = False) -> int:
        h = self.hidden_size
        if not self.num_experts:
            return 3 * h * self.intermediate_size
        experts = self.experts_per_token if active else self.num_experts
        return experts * 3 * h * self.moe_intermediate_size + h * self.num_experts  # + router

    def layer_params(self, active: bool = False) -> int:
        return self.attention_params() + self.mlp_params(active) + 2 * self.hidden_size  # + two RMSNorms

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)

    def n_params(self, active: bool = False) -> int:
        """All parameters (active=True: those one token uses, for FLOPs of MoE models)."""
        return self.num_layers * self.layer_params(active) + self.embedding_params() + self.hidden_size

    def n_non_embedding(self) -> int:
        return self.n_params() - self.embedding_params()

    def lora_params(self, r: int) -> int:
        """Trainable LoRA parameters with peft's target_modules="all-linear" (every projection, not the head)."""
        h = self.hidden_size
        attn = r * ((h + self.q_dim) * 2 + (h + self.kv_dim) * 2)
        if self.num_experts:
            mlp = self.num_experts * 3 * r * (h + self.moe_intermediate_size)
        else:
            mlp = 3 * r * (h + self.intermediate_size)
        return self.num_layers * (attn + mlp)

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """KV-cache bytes one token takes in every layer (K and V)."""
        return 2 * self.num_layers * self.kv_dim * dtype_bytes


def load_shape(spec: str) -> ModelShape:
    """Shape for a table entry (full hub id or its last part), a config.json file or a folder holding one."""
    for key, cfg in KNOWN_CONFIGS.items():
        if spec in (key, key.split("/")[-1]):
            return ModelShape.from_config(cfg, name=key)
    path = Path(spec)
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        try:
            cfg = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read {path}: {e}") from None
        return ModelShape.from_config(cfg, name=str(path))
    known = ", ".join(KNOWN_CONFIGS)
    raise ValueError(f"unknown model {spec!r}: give a config.json, a model folder, or one of {known}")
