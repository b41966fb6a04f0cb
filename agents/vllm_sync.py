"""Keeping a vLLM rollout engine's weights equal to the trainer's, after every optimiser step.

Full fine-tuning pushes the whole state dict (:meth:`VLLMPolicy.update_weights`). LoRA (``lora=True``) has two ways,
chosen by ``TrainConfig.vllm_lora_sync``:

- ``merged`` (default): the base weights with each adapter's delta added, W + (alpha / r) B A, streamed layer by
  layer under the base model's Hugging Face names. The engine runs the plain model at full speed; the push costs as
  much as a full-weight sync. The trainer's own weights are never modified (no merge/unmerge round trip, whose
  rounding would drift the frozen base).
- ``adapter``: the adapter is saved (``save_pretrained``, a few MB) to ``OUT/vllm_lora/step_NNNNN`` and the engine
  switches to it (:meth:`VLLMPolicy.set_lora`). Cheap to sync; generation runs vLLM's LoRA kernels (slower), and the
  engine must be built with ``lora_rank``. Only the last two adapter folders are kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import torch


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


@torch.no_grad()
def merged_named_weights(model, dtype: torch.dtype | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of a peft model's base weights with the LoRA deltas added, named as in the base model's own
    Hugging Face checkpoint (``...q_proj.weight``, no ``base_layer`` / ``lora_`` entries). One tensor at a time."""
    base = model.get_base_model()
    lora_modules = {name: m for name, m in base.named_modules() if hasattr(m, "get_delta_weight")
                    and hasattr(m, "base_layer")}
    for name, tensor in base.state_dict().items():
        if "lora_" in name:
            continue
        owner, _, leaf = name.rpartition(".")
        clean = name.replace(".base_layer.", ".")
        module_name = owner[: -len(".base_layer")] if owner.endswith(".base_layer") else None
        if module_name in lora_modules and leaf == "weight":
            m = lora_modules[module_name]
            tensor = tensor.clone()
            for adapter in m.active_adapters:
                if adapter in m.lora_A:
                    tensor += m.get_delta_weight(adapter).to(tensor.dtype)
        yield clean, tensor.to(dtype) if dtype is not None else tensor


def push_weights(policy, model, *, lora_sync: str = "merged", adapter_root: str | Path | None = None,
                 step: int = 0, dtype: torch.dtype | None = None) -> None:
    """Bring `policy` (a VLLMPolicy) to the weights of `model` (after optimiser step `step`)."""
    if not is_peft(model):
        policy.update_weights(model.state_dict())
        return
    if lora_sync == "merged":
        policy.update_weights(merged_named_weights(model, dtype))
        return
    if lora_sync != "adapter":
        raise ValueError(f"vllm_lora_sync must be merged or adapter, got {lora_sync!r}")
    if adapter_root is None:
        raise ValueError("vllm_lora_sync='adapter' needs a folder for the adapters")
    root = Path(adapter_root)
    folder = root / f"step_{step:05d}"
    model.save_pretrained(str(folder))
    policy.set_lora(str(folder))
    for old in sorted(root.glob("step_*"))[:-2]:  # the engine may still read the previous one
        shutil.rmtree(old, ignore_errors=True)
