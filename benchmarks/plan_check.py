"""Check `hero-gym plan`'s arithmetic against bytes measured from torch tensors on CPU (no RSS noise).

For each model: build it as the trainer does (fp32 weights, LoRA adapters on every linear when asked), take one
AdamW step on a random batch, then add up the bytes of the parameters, their gradients, AdamW's state tensors and
a teacher copy (``clone_frozen``). Activations: the bytes autograd saves during one training forward of
``--tokens`` tokens (plus the fp32 log-softmax), collected with ``saved_tensors_hooks`` and deduplicated by storage.

    python -m hero_gym.benchmarks.plan_check --models tiny,smollm2 [--tokens 512] [--lora]

Prints a Markdown table: measured and planned MiB, and planned / measured.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from hero_gym.agents.base import clone_frozen
from hero_gym.agents.model_shapes import ModelShape
from hero_gym.agents.plan import PlanConfig, activation_bytes, state_bytes


def build(spec: str, lora: bool = False, lora_r: int = 8):
    """(model in fp32 as the trainer sets it up, its shape). "tiny" = a 2-layer h=128 Qwen3."""
    from hero_gym.policies.models import load_model, tiny_model

    model = tiny_model(hidden_size=128, num_layers=2)[0] if spec == "tiny" else load_model(spec)[0]
    shape = ModelShape.from_config(model.config.to_dict(), name=spec)
    model = model.to(torch.float32)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    return model, shape


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def measured_state(model, seq: int = 16, seed: int = 0) -> dict[str, int]:
    """Bytes of weights, gradients, AdamW state and a teacher copy after one optimiser step."""
    torch.manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (1, seq))
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    teacher = clone_frozen(model)
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    return {"weights": _nbytes(model.parameters()), "gradients": _nbytes(p.grad for p in trainable),
            "optimizer (AdamW)": _nbytes(state), "teacher": _nbytes(teacher.parameters())}


def measured_activations(model, tokens: int, seed: int = 0) -> int:
    """Bytes autograd saves in one forward of `tokens` tokens and its fp32 log-softmax (parameters excluded)."""
    torch.manual_seed(seed)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    ids = torch.randint(0, model.config.vocab_size, (1, tokens))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.log_softmax(model(input_ids=ids).logits.float(), -1)
    return sum(n for ptr, n in seen.items() if ptr not in params)


def planned(shape: ModelShape, tokens: int, lora: bool = False, lora_r: int = 8) -> dict[str, int]:
    """The planner's bytes for the same setting (one CPU process: fp32, not sharded, EMA fp32 teacher)."""
    c = PlanConfig(method="hero", gpus=1, shard=False, precision="fp32", teacher="ema", lora=lora, lora_r=lora_r,
                   train_seq_len=tokens, rollout="hf")
    out = dict(state_bytes(shape, c))
    out["activations"] = sum(activation_bytes(shape, tokens, 4, checkpointing=False))
    return out


def check(spec: str, tokens: int, lora: bool = False) -> list[tuple[str, int, int]]:
    """(item, measured bytes, planned bytes) rows for one model."""
    model, shape = build(spec, lora=lora)
    got = measured_state(model)
    got["activations"] = measured_activations(model, tokens)
    want = planned(shape, tokens, lora=lora)
    rows = [(k, got[k], want[k]) for k in got]
    state = [r for r in rows if r[0] != "activations"]
    rows.append(("weights+grads+optimizer+teacher", sum(r[1] for r in state), sum(r[2] for r in state)))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--lora", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| model | setting | item | measured MiB | planned MiB | planned / measured |")
    print("|---|---|---|---:|---:|---:|")
    for spec in args.models.split(","):
        setting = ("LoRA r=8" if args.lora else "full") + f", fp32, {args.tokens} tokens"
        for item, got, want in check(spec, args.tokens, lora=args.lora):
            print(f"| {spec} | {setting} | {item} | {got / 2**20:.2f} | {want / 2**20:.2f} | {want / got:.3f} |")


if __name__ == "__main__":
    main()
