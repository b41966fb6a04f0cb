"""The trainer base shared by GRPO, SDPO, Full-Demo and HERO, readable top to bottom.

One optimiser step = ``grad_accum`` rollout batches; a rollout batch = ``tasks_per_step`` tasks x ``group_size``
episodes collected through :func:`hero_gym.rollout.run_episodes` under the training turn budget. A method only
says how a batch of trajectory groups becomes a loss (:meth:`Trainer.batch_loss`); everything else (model and
optimiser setup, schedule, accumulation, logging, checkpoint/resume, periodic evaluation records) lives here.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hero_gym.agents.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from hero_gym.agents.context import TurnItem, student_context
from hero_gym.agents.distributed import STRATEGIES, DataParallel, reduce_stats
from hero_gym.registry import get_spec
from hero_gym.types import Trajectory

METHODS = ("grpo", "sdpo", "full-demo", "hero")
# Methods that train but are not compared in sweeps by default: behaviour cloning, the sweeps' warm start.
TRAIN_METHODS = METHODS + ("sft",)
# Distillation teacher weights (see TrainConfig.teacher).
TEACHERS = ("current", "ema", "ema-bf16", "frozen")
# Settings a resumed run must share with its checkpoint (others, like steps or eval settings, may change).
RESUME_IDENTITY = ("env_id", "split", "model", "method", "turn_budget", "group_size", "tasks_per_step", "seed", "lora",
                   "lora_r", "teacher")


@dataclass
class TrainConfig:
    """Settings every method shares (method-specific ones live in each method's own config)."""

    env_id: str = "hero_gym/WebShop-v0"
    """Registered env id the rollouts run in."""
    split: str = "train"
    """Split the training tasks come from."""
    tasks: list[int] | None = None
    """Task subset (indices into `split`); None = every task of the split."""
    model: str = "smollm2"
    """Model spec for :func:`hero_gym.policies.models.load_model`: "smollm2", "tiny", a folder or a hub id."""
    method: str = "hero"
    """One of grpo, sdpo, full-demo, hero, sft (the CLI picks the trainer class from it)."""
    turn_budget: int = 15
    """Training turn budget: max_turns of every training rollout (a rollout that runs out is a failure)."""
    group_size: int = 8
    """Rollouts per task per batch (G). GRPO needs G >= 2; the distillation methods work with G = 1."""
    tasks_per_step: int = 4
    """Distinct tasks per rollout batch."""
    steps: int = 10
    """Optimiser steps to train for."""
    lr: float = 1e-5
    """AdamW learning rate (peak, after warm-up)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    schedule: str = "constant"
    """LR schedule after warm-up: constant, linear (to 0 at `steps`) or cosine."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    grad_accum: int = 1
    """Rollout batches whose gradients are summed (averaged) into one optimiser step."""
    micro_batch_size: int = 8
    """Turns per forward pass; only memory depends on it (the loss is the same token mean for every value)."""
    max_new_tokens: int = 256
    """Generation cap per agent turn during rollouts."""
    temperature: float = 1.0
    """Sampling temperature of training rollouts; logits are scored at the same temperature."""
    max_context_tokens: int = 4096
    """Cap on a scored turn's context (older turns dropped first, see hero_gym.agents.context)."""
    student_pass: str = "trajectory"
    """How student log-probs are computed: "trajectory" (one forward per trajectory, when it fits
    max_context_tokens; else per turn) or "turn" (one forward per turn). Both give the same numbers."""
    max_privileged_tokens: int = 2048
    """Cap on a teacher's privileged block."""
    seed: int = 0
    """Seed of task sampling, episode seeds, torch/numpy/python RNGs."""
    lora: bool = False
    """Train LoRA adapters (peft, extra `lora`) instead of all weights."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling alpha."""
    precision: str = "auto"
    """fp32 (weights and compute), bf16-mixed (fp32 weights, bf16 autocast for every forward: rollouts, scoring,
    reflection), bf16 (bf16 weights: half the memory, but updates smaller than bf16's resolution are lost, so
    only with large lr or LoRA). auto = bf16-mixed on a GPU, fp32 on CPU."""
    grad_checkpointing: bool = False
    """Gradient checkpointing (HF ``gradient_checkpointing_enable``, non-reentrant), on GPU and CPU: each decoder
    layer keeps only its input and recomputes its activations in backward. Same loss and gradients, activation
    memory ~ layers x hidden per token instead of the full per-layer set, one more forward of compute (the planner,
    `hero-gym plan --grad-checkpointing`, counts both). Training forwards never use the KV cache."""
    device: str = "auto"
    """"auto" (cuda when present, else cpu), "cpu" or "cuda[:n]". Under `accelerate launch` each process takes
    the device accelerate assigns it."""
    distributed: bool = False
    """Data-parallel over the processes of `torchrun` or `accelerate launch` (NCCL on GPUs, Gloo on CPU), through
    accelerate (hero_gym.agents.distributed): each rank rolls out its own tasks, gradients are averaged across
    ranks before every optimiser step (a rank without loss tokens still joins), the logged step stats are
    combined over ranks; rank 0 logs, evaluates and checkpoints."""
    distributed_strategy: str = "ddp"
    """How `distributed` splits the work: "ddp" (every rank a full copy of weights, gradients, AdamW and teacher;
    gradients averaged by DDP's bucketed all-reduce) or "zero1" (the same, with AdamW's two moments sharded over
    the ranks by torch's ZeroRedundancyOptimizer: 8/N instead of 8 bytes per trainable parameter) or "fsdp"
    (fully sharded, ZeRO-3, by torch FSDP2: weights, gradients, AdamW and teacher copies 1/N per rank; each decoder
    layer gathered for its forward and backward, the whole model gathered for rollouts and evaluation; see
    hero_gym.agents.fsdp). fsdp needs full fine-tuning (no lora), hf rollouts, eval_precision="same" and a teacher
    copy (not teacher="current")."""
    teacher: str = "ema"
    """Distillation teacher weights: current (the live model under no_grad: no copy, no memory; the paper's
    Table 4 finds it the weakest), ema (an fp32 moving-average copy, SDPO's default: 4 bytes/param), ema-bf16
    (the moving average kept in bf16 with stochastic rounding: 2 bytes/param, half of ema's memory) or frozen (an
    fp32 copy of the initial weights)."""
    teacher_update_rate: float = 0.05
    """EMA rate r: teacher <- (1 - r) * teacher + r * student after every optimiser step (SDPO default 0.05); the
    teacher moves a share r of the way to the student, the student is never pulled back."""
    rollout_backend: str = "hf"
    """hf (the training model itself) or vllm (VLLMPolicy, weights synced after each update; GPU only)."""
    vllm_gpu_memory_utilization: float = 0.4
    """Share of GPU memory the vLLM engine may take (the rest is for training)."""
    vllm_max_model_len: int | None = None
    """vLLM's context cap (None = max_context_tokens + max_new_tokens; Qwen3's native 262k would reserve KV for
    262k tokens). Size it with `hero-gym plan`."""
    vllm_tensor_parallel_size: int = 1
    """GPUs per vLLM engine."""
    vllm_devices: str | None = None
    """None = the engine is colocated on the trainer's GPU(s) and takes vllm_gpu_memory_utilization of them; "1" or
    "1,2" = the engine runs on those GPUs of its own (CUDA_VISIBLE_DEVICES numbering; hero_gym.policies.vllm)."""
    vllm_lora_sync: str = "merged"
    """How LoRA training reaches the vLLM engine after each update: merged (base + adapter deltas pushed as full
    weights) or adapter (the adapter saved and loaded as a vLLM LoRA adapter); see hero_gym.agents.vllm_sync."""
    prefix_cache_mb: float = 0
    """hf rollouts: keep each conversation's attention keys/values (MB) so a turn only runs its new tokens
    (hero_gym.policies.kv_cache; emptied whenever the weights change). 0 = off."""
    rollout_batch_size: int | None = None
    """Episodes the rollout engine advances together (None = all of a batch)."""
    env_kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for the env (e.g. a user simulator choice)."""
    eval_every: int = 0
    """Evaluate every N optimiser steps (0 = only at the end when eval_split is set)."""
    eval_split: str | None = None
    """Split evaluated (None = no evaluation)."""
    eval_tasks: list[int] | None = None
    """Evaluation task subset (None = every task of eval_split)."""
    eval_k: int = 1
    """Attempts per evaluation task (mean@k / pass@k)."""
    periodic_eval_k: int | None = None
    """Attempts per task at the periodic (every `eval_every` steps) evaluations; None = eval_k. A smaller value
    buys more points on a learning curve for the price of one final mean@k evaluation."""
    eval_max_turns: int | None = None
    """Turn cap of evaluation episodes (None = the env's default)."""
    eval_temperature: float = 1.0
    """Sampling temperature of evaluation episodes."""
    eval_precision: str = "same"
    """Weights evaluation episodes decode with (hf rollouts): "same" = the trained weights under the training
    precision; "bf16" = a bf16 copy made for each evaluation (on CPU, bf16 autocast over fp32 weights re-casts
    every weight at every decode step: a bf16 copy decodes 2.3x faster, results/bench_train.md). Use one value for
    every run of a comparison, the Base row included."""
    save_every: int = 1
    """Write a checkpoint every N steps (0 = only at the end)."""
    export_model: bool = True
    """At the end, save the trained model (LoRA merged) as a Hugging Face folder out_dir/model, so
    `hero-gym eval --policy hf:OUT/model` can evaluate it on any env (e.g. Airline as out-of-domain)."""
    out_dir: str = "runs/train"
    """Run directory: train_log.jsonl, checkpoint/, eval/<step>/ run stores."""
    tensorboard: bool = False
    """Also log scalars to TensorBoard (needs the tensorboard package)."""
    progress: bool = True
    """Show a progress bar over steps (turns and tokens while a step's rollouts run) and print one line per step
    (loss, reward, success, turns, tokens/s, selected turns) on stderr; a line every 30 s when not a terminal."""
    credit_rollouts_per_step: int = 4
    """Distillation methods: rollouts per step whose per-token teacher-student divergences are kept in
    out_dir/credit/step_NNNNN.jsonl for `hero-gym view` (0 = none; bounds in agents/credit_log.py)."""

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.method not in TRAIN_METHODS:
            raise ValueError(f"method must be one of {TRAIN_METHODS}, got {self.method!r}")
        for name in ("turn_budget", "group_size", "tasks_per_step", "grad_accum", "micro_batch_size",
                     "max_new_tokens", "max_context_tokens", "eval_k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.periodic_eval_k is not None and (isinstance(self.periodic_eval_k, bool)
                                                 or not isinstance(self.periodic_eval_k, int) or self.periodic_eval_k < 1):
            raise ValueError(f"periodic_eval_k must be a positive integer or None, got {self.periodic_eval_k!r}")
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {self.steps!r}")
        c = self.credit_rollouts_per_step
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ValueError(f"credit_rollouts_per_step must be a non-negative integer, got {c!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"schedule must be constant, linear or cosine, got {self.schedule!r}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS}, got {self.teacher!r}")
        if self.distributed_strategy not in STRATEGIES:
            raise ValueError(f"distributed_strategy must be one of {STRATEGIES}, got {self.distributed_strategy!r}")
        if self.distributed and self.distributed_strategy == "fsdp":
            # Each of these works on the whole unsharded model (PEFT wrappers, weight pushes, a deep copy) or
            # scores with the sharded student between a loss forward and its backward (agents/fsdp.py's gate).
            unsupported = {"lora": self.lora, "rollout_backend='vllm'": self.rollout_backend == "vllm",
                           "eval_precision='bf16'": self.eval_precision == "bf16",
                           "teacher='current'": self.teacher == "current"}
            bad = [k for k, v in unsupported.items() if v]
            if bad:
                raise ValueError(f"distributed_strategy='fsdp' does not support {', '.join(bad)}: use ddp or zero1 "
                                 "for those")
        if not 0 < self.teacher_update_rate <= 1:
            raise ValueError(f"teacher_update_rate must be in (0, 1], got {self.teacher_update_rate}")
        if self.student_pass not in ("trajectory", "turn"):
            raise ValueError(f"student_pass must be trajectory or turn, got {self.student_pass!r}")
        if self.precision not in ("auto", "fp32", "bf16-mixed", "bf16"):
            raise ValueError(f"precision must be auto, fp32, bf16-mixed or bf16, got {self.precision!r}")
        if self.rollout_backend not in ("hf", "vllm"):
            raise ValueError(f"rollout_backend must be hf or vllm, got {self.rollout_backend!r}")
        if self.eval_precision not in ("same", "bf16"):
            raise ValueError(f"eval_precision must be same or bf16, got {self.eval_precision!r}")
        if self.vllm_lora_sync not in ("merged", "adapter"):
            raise ValueError(f"vllm_lora_sync must be merged or adapter, got {self.vllm_lora_sync!r}")
        spec = get_spec(self.env_id)  # raises for an unknown id
        for split, tasks in ((self.split, self.tasks), (self.eval_split, self.eval_tasks)):
            if split is None:
                continue
            if split not in spec.splits:
                raise ValueError(f"{self.env_id} has no split {split!r}; splits: {sorted(spec.splits)}")
            n = spec.splits[split]
            bad = [t for t in (tasks or []) if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < n]
            if bad:
                raise ValueError(f"task indices {bad[:5]} are not in {split!r} (0..{n - 1})")
            if tasks is not None and not tasks:
                raise ValueError(f"the task subset for split {split!r} is empty")


def _resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


class Trainer:
    """Shared training loop. Subclasses implement :meth:`batch_loss` (and may override :meth:`prepare`)."""

    method_name = "base"
    # Whether training episodes run under `turn_budget`; evaluation records of a method that does not (behaviour
    # cloning on whole demonstrations) carry train_budget 0, which the budget-sweep plot draws as the start line.
    uses_turn_budget = True

    def __init__(self, config: TrainConfig, *, model=None, tokenizer=None, rollout_fn: Callable | None = None,
                 policy=None, resume: bool = True):
        config.validate()
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.rank, self.world_size, self.dp = 0, 1, None
        if config.distributed:
            self.dp = DataParallel(config.device, config.distributed_strategy)
            self.rank, self.world_size, self.device = self.dp.rank, self.dp.world_size, self.dp.device
        else:
            self.device = _resolve_device(config.device)
        if model is None:
            from hero_gym.policies.models import load_model
            model, tokenizer = load_model(config.model)
        if tokenizer is None:
            raise ValueError("a model passed in needs its tokenizer too")
        self.precision = config.precision if config.precision != "auto" else (
            "bf16-mixed" if self.device.type == "cuda" else "fp32")
        if self.device.type == "cpu" and (self.precision != "fp32" or config.eval_precision == "bf16"):
            from hero_gym.policies.models import cpu_has_native_bf16

            if not cpu_has_native_bf16():
                warnings.warn(f"precision={self.precision!r}, eval_precision={config.eval_precision!r} on a CPU "
                              "without native bf16 (no avx512_bf16/amx_bf16 flag): bf16 matmuls run emulated here, "
                              "2.7-15x slower than fp32 (results/bench_cpu_precision.md); use precision='fp32', "
                              "eval_precision='same'", stacklevel=2)
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.model = self._setup_model(model)
        if self.dp is not None:
            self.model = self.dp.wrap(self.model)  # the same module; DDP holds its trainable parameters
        self.rollout_fn = rollout_fn or _default_rollout
        self._policy = policy
        self.step = 0
        self.counters: dict[str, int] = {}
        set_all_seeds(config.seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        adamw = dict(lr=config.lr, weight_decay=config.weight_decay)
        self.optimizer = self.dp.optimizer(params, **adamw) if self.dp is not None else torch.optim.AdamW(params, **adamw)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.prepare()
        if self.sharding is not None:
            self.sharding.drop_template()  # teacher copies are made: the unsharded initial weights can go
        if resume and (self.out_dir / "checkpoint").exists():
            self.load(self.out_dir / "checkpoint")

    # ----- setup ----------------------------------------------------------------------------------------------
    def _setup_model(self, model):
        cfg = self.config
        # Optimiser updates of ~lr are far below bf16's resolution for typical weights: keep fp32 masters unless
        # pure bf16 is asked for explicitly.
        model = model.to(self.device, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float32)
        if cfg.grad_checkpointing:
            # Non-reentrant: gradients reach every parameter even when the layer inputs do not require grad
            # (frozen embeddings under LoRA), and it works the same on CPU.
            kw = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
            # model.config.use_cache stays as it is (it would be exported with the model): every training forward
            # (agents/scoring.py) passes use_cache=False, and rollouts keep their KV cache (model.eval()).
        if cfg.lora:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError:
                raise ImportError("lora=True needs peft: pip install 'hero-gym[lora]'") from None
            model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
        return model

    def prepare(self) -> None:
        """Hook for a method's extra state (teacher copies, reference model); runs before a resume loads state."""

    @property
    def sharding(self):
        """fsdp's :class:`~hero_gym.agents.fsdp.Sharding` (None for a single process, ddp and zero1)."""
        return self.dp.sharding if self.dp is not None else None

    def frozen_copy(self, dtype: torch.dtype | None = None):
        """A no-grad copy of the model's weights (teacher / reference), in `dtype` if given; sharded under fsdp."""
        if self.sharding is not None:
            return self.sharding.frozen_copy(dtype)
        twin = clone_frozen(self.model)
        return twin.to(dtype) if dtype is not None else twin

    def module_state(self, module: torch.nn.Module) -> dict:
        """`module`'s state dict for a checkpoint: full tensors (fsdp gathered them in before_save)."""
        return self.sharding.saved(module) if self.sharding is not None else module.state_dict()

    def load_module_state(self, module: torch.nn.Module, state: dict) -> None:
        """Load a checkpoint's (full) state dict into `module`; fsdp keeps each rank's shard."""
        if self.sharding is not None:
            self.sharding.load_state(module, state)
        else:
            module.load_state_dict(state)

    def frozen_modules(self) -> list[torch.nn.Module]:
        """The method's teacher / reference copies (saved whole with the checkpoint under fsdp)."""
        return []

    def _whole(self):
        """Every rank: the model's weights whole for the block (fsdp), for generation and rank 0's evaluation."""
        return self.dp.gathered() if self.dp is not None else contextlib.nullcontext()

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.schedule == "constant":
            return 1.0
        frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        return 1.0 - frac if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))

    @property
    def policy(self):
        """The rollout policy over the live model (built on first use)."""
        if self._policy is None:
            if self.config.rollout_backend == "vllm":
                self._policy = self._vllm_policy()
            else:
                from hero_gym.policies.hf import HFPolicy
                self._policy = HFPolicy(self.model, self.tokenizer, name=f"{self.config.model}+{self.method_name}",
                                        prefix_cache_mb=self.config.prefix_cache_mb)
        return self._policy

    def _vllm_policy(self):
        # vLLM loads the weights itself from a folder; the trainer then pushes its weights after every update
        # (LoRA: merged weights or the adapter, hero_gym.agents.vllm_sync).
        from hero_gym.policies.vllm import VLLMPolicy
        path = self.config.model
        if path == "smollm2":
            from hero_gym.policies.models import default_model_path
            path = str(default_model_path())
        policy = VLLMPolicy(path, **vllm_engine_kwargs(self.config, self.precision))
        self._push_vllm_weights(policy, self.step)
        return policy

    def _push_vllm_weights(self, policy, step: int) -> None:
        """Sync the engine to the weights after `step` optimiser steps."""
        from hero_gym.agents.vllm_sync import push_weights
        push_weights(policy, self.model, lora_sync=self.config.vllm_lora_sync, step=step,
                     adapter_root=self.out_dir / "vllm_lora",
                     dtype=torch.bfloat16 if self.precision.startswith("bf16") else None)

    def autocast(self):
        """Context for every forward pass: bf16 autocast under bf16-mixed, nothing otherwise."""
        if self.precision == "bf16-mixed":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def extra_state(self) -> dict:
        """Method state saved in checkpoints (teacher/reference weights)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` saved."""

    # ----- rollouts -------------------------------------------------------------------------------------------
    def task_pool(self, split: str, tasks: list[int] | None) -> list[int]:
        return list(tasks) if tasks is not None else list(range(get_spec(self.config.env_id).splits[split]))

    def episode_specs(self, step: int, micro: int) -> list:
        """The episodes of rollout batch `micro` of step `step`: `tasks_per_step` tasks drawn by (seed, step, micro),
        G episodes each, task by task."""
        cfg = self.config
        pool = self.task_pool(cfg.split, cfg.tasks)
        rng = np.random.default_rng([cfg.seed, step, micro, self.rank])
        tasks = rng.choice(pool, size=cfg.tasks_per_step, replace=len(pool) < cfg.tasks_per_step).tolist()
        base = (cfg.seed * 1_000_003 + step * 1009 + micro * 101 + self.rank * 7_777_777) % (2**31)
        return [make_episode_spec(int(t), (base + i * cfg.group_size + g) % (2**31), cfg.split, attempt=g)
                for i, t in enumerate(tasks) for g in range(cfg.group_size)]

    def collect(self, step: int, micro: int) -> list[list[Trajectory]]:
        """Rollout batch `micro` of step `step`: `tasks_per_step` tasks drawn by (seed, step, micro), G episodes each."""
        cfg = self.config
        specs = self.episode_specs(step, micro)
        self.model.eval()
        with torch.no_grad(), self.autocast():
            trajs = self.rollout_fn(
                cfg.env_id, self.policy, specs,
                env_kwargs={**cfg.env_kwargs, "max_turns": cfg.turn_budget},
                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, batch_size=cfg.rollout_batch_size,
            )
        self.model.train()
        if len(trajs) != len(specs):
            raise RuntimeError(f"rollout returned {len(trajs)} trajectories for {len(specs)} episodes")
        return [trajs[i:i + cfg.group_size] for i in range(0, len(trajs), cfg.group_size)]

    # ----- the loss (what differs per method) -----------------------------------------------------------------
    def batch_loss(self, groups: list[list[Trajectory]], scale: float) -> dict:
        """Compute the method's loss on one rollout batch and backpropagate ``loss * scale`` (micro-batched).

        Returns scalar stats; must include "loss" (the batch loss value) and "loss_tokens".
        """
        raise NotImplementedError

    def backward(self, loss: torch.Tensor) -> None:
        if loss.requires_grad:
            loss.backward()
        if self.sharding is not None:
            self.sharding.after_backward()

    def whole_trajectory_ok(self, traj: Trajectory, turns: list[int]) -> bool:
        """Whether the student can be scored in one forward over `traj` (no turn up to the last one is truncated)."""
        if self.config.student_pass != "trajectory" or not turns:
            return False
        return traj.turn_spans()[max(turns)][1] <= self.config.max_context_tokens

    def student_ids(self, traj: Trajectory, turn: int) -> list[int]:
        """The student's context of `turn` under max_context_tokens (hero_gym.agents.context). A context the cap cut
        is not the one the sampler saw, so its log-probs differ from the rollout's: counted as
        truncated_context_turns (logged as total_truncated_context_turns) so a run can tell its cap is too small.
        Counted per item built: with rl_coef > 0 a distillation method builds two items per turn, so a cut turn counts
        twice; read the counter as zero or not."""
        ids = student_context(traj, turn, self.config.max_context_tokens)
        if len(ids) < traj.turn_spans()[turn][0]:
            self.count("truncated_context_turns")
        return ids

    def split_by_pass(
        self, trajs: list[Trajectory], items: list[TurnItem]
    ) -> tuple[list[tuple[Trajectory, list[TurnItem]]], list[TurnItem]]:
        """Group `items` by trajectory (``item.traj_index`` indexes `trajs`, first appearance first): the
        (trajectory, its items) pairs one whole-trajectory forward can score, and the items left to score per turn."""
        by_traj: dict[int, list[TurnItem]] = {}
        for it in items:
            by_traj.setdefault(it.traj_index, []).append(it)
        whole: list[tuple[Trajectory, list[TurnItem]]] = []
        per_turn: list[TurnItem] = []
        for k, its in by_traj.items():
            if self.whole_trajectory_ok(trajs[k], [i.turn_index for i in its]):
                whole.append((trajs[k], its))
            else:
                per_turn += its
        return whole, per_turn

    def count(self, name: str, n: int = 1) -> None:
        """Add to a run-long counter (logged each step), e.g. turns without a diagnosis."""
        self.counters[name] = self.counters.get(name, 0) + int(n)

    def after_optimizer_step(self) -> None:
        """Hook run once per training step, after its update(s) (EMA teacher update, vLLM weight sync)."""
        if self.config.rollout_backend == "vllm" and self._policy is not None:
            self._push_vllm_weights(self._policy, self.step + 1)  # runs before self.step counts this update

    # ----- the loop -------------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        """Collect the step's rollout batches, update (:meth:`update`), log and return the step's stats."""
        cfg = self.config
        t0, c0 = time.perf_counter(), time.process_time()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        batches: list[list[list[Trajectory]]] = []
        rollout_s = 0.0
        with self._whole():  # fsdp: generation runs no collective (ranks generate different numbers of tokens)
            for micro in range(cfg.grad_accum):
                r0 = time.perf_counter()
                batches.append(self.collect(self.step, micro))
                rollout_s += time.perf_counter() - r0
        trajs = [t for groups in batches for g in groups for t in g]
        lr = self.scheduler.get_last_lr()[0]
        with self.dp.loss_phase() if self.dp is not None else contextlib.nullcontext():
            stats = self.update(batches)
        ro = _rollout_summary(trajs)
        if self.dp is not None:  # one record for the run: the loss is the mean over ranks, rollouts are pooled
            per_rank = self.dp.gather((stats, ro))
            stats = reduce_stats([s for s, _ in per_rank], self.mean_stats, self.same_stats)
            ro = {k: sum((r[k] for _, r in per_rank), type(ro[k])()) for k in ro}
        for name, (num, den) in self.rate_stats.items():
            if den in stats:
                stats[name] = stats.get(num, 0.0) / stats[den] if stats[den] else 0.0
        self.scheduler.step()
        self.after_optimizer_step()
        self.step += 1
        errors = ro["errors"]
        if errors and len(errors) == len(ro["success"]):
            warnings.warn(f"step {self.step}: every rollout failed, nothing was learned; first error: {errors[0]}",
                          RuntimeWarning, stacklevel=2)
        n_turns, gen_tokens = ro["env_turns"], ro["gen_tokens"]
        rec = {
            "step": self.step, "method": self.method_name, "episode_errors": len(errors), "lr": lr, **stats,
            "episodes": len(ro["success"]), "env_turns": n_turns,
            "success_rate": float(np.mean(ro["success"])) if ro["success"] else 0.0,
            "mean_reward": float(np.mean(ro["reward"])) if ro["reward"] else 0.0,
            "mean_turns": float(np.mean(ro["turns"])) if ro["turns"] else 0.0,
            # Why a method does not learn starts here: actions the env rejected, and how much was generated.
            "invalid_action_rate": ro["invalid"] / n_turns if n_turns else 0.0,
            "gen_tokens": gen_tokens, "gen_tokens_per_s": gen_tokens / rollout_s if rollout_s > 0 else 0.0,
            "rollout_tokens_in": ro["tokens_in"],  # context tokens the rollouts processed
            "rollout_s": rollout_s, "step_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "peak_rss_mb": _peak_rss_mb(),
            **{f"total_{k}": v for k, v in self.counters.items()},
        }
        if self.device.type == "cuda":
            rec["peak_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.log(rec)
        return rec

    # Per-step stats that are averaged (not summed) over a step's rollout batches, and rates derived after summing.
    mean_stats: tuple[str, ...] = ("loss",)
    # Per-step stats that are the same on every rank of a data-parallel run (taken from rank 0, not summed).
    same_stats: tuple[str, ...] = ("grad_norm", "grad_norm_max", "updates")
    rate_stats: dict[str, tuple[str, str]] = {}

    def update(self, batches: list[list[list[Trajectory]]]) -> dict:
        """Turn the step's rollout batches into parameter updates; return the step's stats, with ``grad_norm``.

        Default: one optimiser update on the mean of the batches' losses (gradient accumulation over grad_accum
        batches). GRPO overrides it with several epochs x mini-batches per batch of rollouts.
        """
        self.optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}
        for groups in batches:
            with self.autocast():
                batch_stats = self.batch_loss(groups, 1.0 / len(batches))
            for k, v in batch_stats.items():
                stats[k] = stats.get(k, 0.0) + float(v) / (len(batches) if k in self.mean_stats else 1)
        stats["grad_norm"] = self.optimizer_update()
        return stats

    def optimizer_update(self) -> float:
        """Average gradients across ranks, clip, take one optimiser step; return the gradient norm before clipping."""
        cfg = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.dp is not None:
            self.dp.sync_gradients()  # every rank, every update: a rank without loss tokens must still join
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        if hasattr(grad_norm, "full_tensor"):  # fsdp: the norm over every rank's gradient shards
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        return float(grad_norm)

    @property
    def is_main(self) -> bool:
        """Whether this process logs, evaluates and writes checkpoints (rank 0)."""
        return self.rank == 0

    def train(self) -> list[dict]:
        """Run until `steps` (continuing a resumed run), evaluating and checkpointing as configured."""
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            (self.out_dir / "config.json").write_text(json.dumps(self.describe(), indent=2, default=str) + "\n")
        history = []
        from hero_gym.progress import progress_bar

        bar = progress_bar(cfg.steps, initial=self.step, unit="step", desc=f"train {self.method_name}",
                           disable=not (cfg.progress and self.is_main))
        inner, seen = self.rollout_fn, {"turns": 0, "tokens": 0}
        self.rollout_fn = _watched_rollout(inner, seen, bar)
        def periodic_eval_due() -> bool:  # the same on every rank: fsdp gathers the weights on all for rank 0
            return bool(cfg.eval_split and cfg.eval_every and self.step and self.step % cfg.eval_every == 0
                        and self.step < cfg.steps)

        def periodic_eval() -> None:
            with self._whole():
                if self.is_main:
                    self.evaluate()

        try:
            # A run killed during a periodic evaluation resumes after that step's checkpoint: finish the
            # evaluation first (stored episodes are skipped).
            if periodic_eval_due():
                periodic_eval()
            while self.step < cfg.steps:
                seen.update(turns=0, tokens=0)
                rec = self.train_step()
                history.append(rec)
                if cfg.progress and self.is_main:
                    bar.update(1)
                    bar.write(step_line(rec, cfg.steps, seen["tokens"]), file=sys.stderr)
                last = self.step == cfg.steps
                # The checkpoint first, so a kill during a long evaluation does not cost the step's training.
                if (cfg.save_every and self.step % cfg.save_every == 0) or last:
                    if self.dp is not None:  # every rank: sharded state gathers on rank 0
                        self.dp.before_save(self.optimizer, self.frozen_modules())
                    if self.is_main:
                        self.save()
                if periodic_eval_due():
                    periodic_eval()
        finally:
            self.rollout_fn = inner
            bar.close()
        if cfg.export_model and (history or not (self.out_dir / "model").is_dir()):
            full = self.sharding.full_state(self.model) if self.sharding is not None else None  # every rank
            if self.is_main:
                self.export(self.out_dir / "model", state_dict=full)
        if cfg.eval_split:
            with self._whole():
                if self.is_main:
                    self.evaluate(final=True)  # resumes (skips stored episodes) when the run had already finished
        return history

    def describe(self) -> dict:
        """Config of the run as JSON-able dicts (shared + method config)."""
        d = {"train": dataclasses.asdict(self.config)}
        mc = getattr(self, "method_config", None)
        if mc is not None:
            d["method_config"] = dataclasses.asdict(mc)
        return d

    def log(self, rec: dict) -> None:
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "train_log.jsonl", "a") as f:
            f.write(json.dumps(rec, default=float) + "\n")
        if self.config.tensorboard:
            if not hasattr(self, "_tb"):
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.out_dir / "tb"))
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k != "step":
                    self._tb.add_scalar(k, v, rec["step"])

    # ----- evaluation -----------------------------------------------------------------------------------------
    def evaluate(self, final: bool = False) -> Path:
        """Evaluate the current model on eval_split (k attempts per task) into a RunStore: out_dir/eval/step_NNNNN,
        or out_dir/eval/final for the end-of-training evaluation (the directory sweeps compare and plot)."""
        from hero_gym.records import RunStore, record_from_trajectory

        cfg = self.config
        spec = get_spec(cfg.env_id)
        max_turns = cfg.eval_max_turns or spec.default_max_turns
        tasks = self.task_pool(cfg.eval_split, cfg.eval_tasks)
        budget = cfg.turn_budget if self.uses_turn_budget else 0
        k = cfg.eval_k if final or cfg.periodic_eval_k is None else cfg.periodic_eval_k
        name = f"{self.method_name}-B{budget}-s{cfg.seed}-step{self.step}"
        store = RunStore(self.out_dir / "eval" / ("final" if final else f"step_{self.step:05d}"))
        store.init({"env": cfg.env_id, "split": cfg.eval_split, "policy": f"{cfg.model}+{self.method_name}",
                    "k": k, "max_turns": max_turns, "seed": cfg.seed, "method": self.method_name,
                    "train_budget": budget, "temperature": cfg.eval_temperature,
                    "max_new_tokens": cfg.max_new_tokens, "name": name, "train_step": self.step, "tasks": tasks})
        done = store.done_keys()
        todo = [(t, a) for t in tasks for a in range(k)
                if (cfg.env_id, cfg.eval_split, t, a) not in done]
        specs = [make_episode_spec(t, eval_seed(cfg.seed, t, a), cfg.eval_split, attempt=a) for t, a in todo]
        if specs:
            attempt_of = {s.seed: a for s, (_, a) in zip(specs, todo)}  # seeds are unique per (task, attempt)

            def keep(tr):  # stored as each episode ends, so a long evaluation that is killed resumes
                store.append([record_from_trajectory(tr, attempt=attempt_of[tr.seed],
                                                     policy=f"{cfg.model}+{self.method_name}", max_turns=max_turns,
                                                     method=self.method_name, train_budget=budget, run=name)])

            state = rng_state()  # evaluation must not shift the training RNG stream (resume equivalence)
            self.model.eval()
            policy, precision = self.policy, self.autocast()
            if cfg.eval_precision == "bf16" and cfg.rollout_backend == "hf":
                policy, precision = self._bf16_eval_policy(), contextlib.nullcontext()
            # the run's OS lock: a second process started on the same run stops instead of storing the same episodes
            with store.lock(), torch.no_grad(), precision:
                self.rollout_fn(cfg.env_id, policy, specs, env_kwargs={**cfg.env_kwargs, "max_turns": max_turns},
                                max_new_tokens=cfg.max_new_tokens, temperature=cfg.eval_temperature,
                                batch_size=cfg.rollout_batch_size, on_episode=keep)
            del policy
            self.model.train()
            set_rng_state(state)
        return store.dir

    def _bf16_eval_policy(self):
        """An HF policy over a bf16 copy of the current weights (LoRA adapters merged), dropped after the evaluation."""
        from hero_gym.policies.hf import HFPolicy

        model = copy.deepcopy(self.model)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model = model.to(dtype=torch.bfloat16).eval()
        return HFPolicy(model, self.tokenizer, name=f"{self.config.model}+{self.method_name}",
                        prefix_cache_mb=self.config.prefix_cache_mb)

    def export(self, directory: str | Path, state_dict: dict | None = None) -> Path:
        """Save the current model (LoRA adapters merged into a copy) and tokenizer with save_pretrained; fsdp passes
        the full `state_dict` it gathered."""
        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(str(directory), **({"state_dict": state_dict} if state_dict is not None else {}))
        self.tokenizer.save_pretrained(str(directory))
        return Path(directory)

    # ----- checkpoints ----------------------------------------------------------------------------------------
    def save(self, directory: str | Path | None = None) -> Path:
        optimizer = self.sharding.saved("optimizer") if self.sharding is not None else self.optimizer.state_dict()
        state = {"model": self.module_state(self.model), "optimizer": optimizer,
                 "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "extra": self.extra_state(),
                 "counters": dict(self.counters)}
        return save_checkpoint(directory or self.out_dir / "checkpoint", state,
                               {"step": self.step, "method": self.method_name, **self.describe()})

    def load(self, directory: str | Path) -> None:
        state, meta = load_checkpoint(directory)
        if meta.get("method") != self.method_name:
            raise ValueError(f"checkpoint in {directory} is a {meta.get('method')!r} run, not {self.method_name!r}")
        stored = meta.get("train", {})
        diffs = [f"{k}: stored {stored.get(k)!r}, asked {getattr(self.config, k)!r}" for k in RESUME_IDENTITY
                 if k in stored and stored[k] != getattr(self.config, k)]
        if diffs:
            raise ValueError(f"checkpoint in {directory} belongs to another run ({'; '.join(diffs)}); "
                             "use another out_dir or the original settings")
        self.load_module_state(self.model, state["model"])
        if self.sharding is not None:
            self.sharding.load_optimizer_state(self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.load_extra_state(state["extra"])
        self.counters = dict(state.get("counters", {}))
        set_rng_state(state["rng"])
        self.step = int(meta["step"])


# ----- helpers shared by the methods --------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; Linux reports KB, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _rollout_summary(trajs: list[Trajectory]) -> dict:
    """What a step record says about its rollouts, in a form that pools over ranks by adding (lists concatenate)."""
    turns = [turn for t in trajs for turn in t.turns]
    return {"success": [float(t.success) for t in trajs], "reward": [float(t.reward) for t in trajs],
            "turns": [t.num_turns for t in trajs], "errors": [t.error for t in trajs if t.error],
            "env_turns": len(turns), "invalid": sum(bool(turn.invalid) for turn in turns),
            "gen_tokens": sum(len(turn.action_token_ids) for turn in turns), "tokens_in": sum(t.tokens_in for t in trajs)}


def set_all_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def eval_seed(seed: int, task: int, attempt: int) -> int:
    """Episode seed of an evaluation episode: depends only on (seed, task, attempt), like the harness's runs."""
    return (seed * 7_919 + task * 131 + attempt) % (2**31)


def make_episode_spec(task_index: int, seed: int, split: str | None, attempt: int = 0):
    """The rollout engine's EpisodeSpec for one episode."""
    from hero_gym.rollout import EpisodeSpec

    return EpisodeSpec(task_index=task_index, attempt=attempt, seed=seed, split=split)


def step_line(rec: dict, steps: int, tokens: int | None = None) -> str:
    """One line for a training step's log record: what a person watching a run wants to see."""
    parts = [f"[{rec.get('method', 'train')}] step {rec['step']}/{steps}"]
    for key, label, fmt in (("loss", "loss", ".4g"), ("mean_reward", "reward", ".3f"), ("success_rate", "success", ".3f"),
                            ("mean_turns", "turns", ".2f")):
        if isinstance(rec.get(key), (int, float)):
            parts.append(f"{label} {rec[key]:{fmt}}")
    tokens = rec.get("tokens_out", tokens)
    if tokens and rec.get("rollout_s"):
        parts.append(f"tok/s {tokens / rec['rollout_s']:.1f}")
    if "scored_turns" in rec:  # distillation methods: turns selected for the loss
        parts.append(f"selected {rec['scored_turns']:g}/{rec.get('turns', rec.get('env_turns', 0)):g} turns")
    if rec.get("episode_errors"):
        parts.append(f"errors {rec['episode_errors']}")
    if isinstance(rec.get("step_s"), (int, float)):
        parts.append(f"{rec['step_s']:.1f}s")
    return "  ".join(parts)


def _watched_rollout(inner: Callable, seen: dict, bar) -> Callable:
    """`inner` with turns and generated tokens counted into `seen` and shown on `bar` while episodes run (the
    default rollout reports every turn; a custom one is counted when it returns)."""

    def watched(env_id, policy, episodes, **kwargs):
        def on_turn(traj):
            seen["turns"] += 1
            seen["tokens"] += len(traj.turns[-1].action_token_ids)
            bar.set_postfix_str(f"rollouts: {seen['turns']} turns, {seen['tokens']} tokens")

        if inner is _default_rollout:
            return inner(env_id, policy, episodes, on_turn=on_turn, **kwargs)
        trajs = inner(env_id, policy, episodes, **kwargs)
        seen["turns"] += sum(t.num_turns for t in trajs)
        seen["tokens"] += sum(t.tokens_out for t in trajs)
        return trajs

    return watched


def _default_rollout(env_id, policy, episodes, **kwargs):
    from hero_gym.rollout import run_episodes
    return run_episodes(env_id, policy, episodes, **kwargs)


def vllm_engine_kwargs(config: TrainConfig, precision: str) -> dict:
    """Keyword arguments of VLLMPolicy / vllm.LLM from the run config."""
    max_len = config.vllm_max_model_len or config.max_context_tokens + config.max_new_tokens
    kw = dict(gpu_memory_utilization=config.vllm_gpu_memory_utilization, max_model_len=max_len,
              tensor_parallel_size=config.vllm_tensor_parallel_size,
              dtype="bfloat16" if precision.startswith("bf16") else "float32")
    if config.vllm_devices is not None:
        kw["devices"] = config.vllm_devices
    if config.lora and config.vllm_lora_sync == "adapter":
        kw["lora_rank"] = config.lora_r
    return kw


def clone_frozen(model):
    """A no-grad copy of `model` (teacher / reference weights)."""
    twin = copy.deepcopy(model)
    twin.eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin
