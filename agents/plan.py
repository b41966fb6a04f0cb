"""`hero-gym plan`: per-GPU memory and wall-clock hours of a training recipe, before renting the GPUs.

Memory per training GPU (GiB = 2**30 bytes) is the sum of:

- weights, gradients and AdamW's two moments, divided over the GPUs when sharded (FSDP full shard / ZeRO-3, what
  ``hero-gym train --distributed --set distributed_strategy=fsdp`` runs):
  fp32 and bf16-mixed keep fp32 masters (4 + 4 + 8 bytes per trainable parameter, the 16 bytes/param of the ZeRO
  paper's mixed-precision Adam); bf16 keeps everything in bf16 (2 + 2 + 4). LoRA freezes the base (no gradient,
  no moments) and trains r x (in + out) parameters per projection.
- bf16 compute copies under bf16-mixed: unsharded, autocast caches a bf16 copy of every weight during a forward;
  sharded, FSDP holds two gathered layers (the current one and the prefetched next one).
- sharded only, the whole weights hero-gym's fsdp gathers (agents/fsdp.py): the student's, in the training dtype,
  on every GPU during rollouts and evaluation (generation then runs without collectives), and the teacher copy's
  during the loss phase (its scoring forwards likewise). The phases do not overlap: the plan counts the larger
  peak, the whole teacher beside the activations, or the whole student where the activations would be.
- the distillation teacher: ema/frozen = a full copy of the model (fp32, or bf16 with ``teacher=ema-bf16``),
  current = none (the live model, no grad). GRPO has none (no KL reference by default).
- activations of one micro-batch of ``train_seq_len`` tokens: per layer and token, the tensors autograd saves
  for a Llama/Qwen decoder layer with SDPA attention (no s^2 term); with gradient checkpointing only each layer's
  input is kept plus one layer being recomputed. The logits are counted apart: ``train_seq_len`` x vocab x
  (compute dtype + fp32 log-softmax) bytes, which dominates for Qwen's 152k vocabulary.
- a runtime reserve (CUDA context, allocator fragmentation).

The vLLM engine (``rollout=vllm``) takes ``vllm_gpu_memory_utilization`` of each GPU it runs on: colocated on the
training GPUs (training gets the rest), or on ``vllm_gpus`` GPUs of their own. Inside its share it needs bf16
weights / tensor_parallel_size, KV cache for ``vllm_seqs`` sequences at full ``max_model_len``, and an overhead
for activations and CUDA graphs.

Hours: generation tokens / (engines x ``gen_tokens_per_s``) + training FLOPs / (training GPUs x
``train_tflops`` x 1e12), per step, plus evaluations. Training FLOPs are 6 x active params per student token
(8 with checkpointing's recomputed forward) plus 2 x active params per teacher token. Both rates default to
assumptions written next to the fields below; pass figures measured on your own hardware.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from dataclasses import dataclass

from hero_gym.agents.model_shapes import ModelShape, load_shape

GIB = 2**30


@dataclass(frozen=True)
class PlanConfig:
    """A training recipe as the planner sees it (defaults: the Table-1 recipe for Qwen3-4B on TauBench)."""

    model: str = "Qwen/Qwen3-4B-Instruct-2507"
    """Table entry, config.json or model folder (see hero_gym.agents.model_shapes)."""
    method: str = "hero"
    """grpo (no teacher), sdpo, full-demo or hero (a teacher copy unless teacher=current)."""
    gpus: int = 1
    """GPUs in the node (training plus, with vllm_gpus > 0, the engine's own)."""
    gpu_mem_gb: float = 80.0
    """Memory of one GPU in GB as sold (80 = an 80 GB A100/H100; converted at 1e9 bytes)."""
    shard: bool = True
    """Shard weights, gradients, optimiser and teacher over the training GPUs (FSDP full shard / ZeRO-3):
    `hero-gym train --distributed --set distributed_strategy=fsdp`. Its rollouts gather the whole student on every
    GPU (and the loss phase the whole teacher), which the plan counts as "gathered weights (fsdp)"."""
    zero1: bool = False
    """Without shard: AdamW's moments sharded over the training GPUs, weights, gradients and teacher whole on each
    (ZeRO stage 1, `hero-gym train --distributed --set distributed_strategy=zero1`)."""
    lora: bool = False
    """Train LoRA adapters instead of all weights."""
    lora_r: int = 16
    """LoRA rank."""
    precision: str = "bf16-mixed"
    """fp32, bf16-mixed (fp32 masters, bf16 compute) or bf16 (bf16 weights and moments)."""
    teacher: str = "ema"
    """ema / frozen (fp32 copy), ema-bf16 (bf16 copy), current (no copy). Ignored for grpo."""
    grad_checkpointing: bool = False
    """Recompute each layer's activations in backward (saves memory, costs one more forward)."""
    train_seq_len: int = 16384
    """Tokens in one training forward (the recipe's max_context_tokens: one trajectory per micro-batch)."""
    runtime_reserve_gb: float = 2.0
    """CUDA context, NCCL buffers and allocator fragmentation per GPU (assumption: 1-3 GB is typical)."""
    rollout: str = "vllm"
    """vllm (an engine beside the trainer) or hf (the training model samples; no engine memory)."""
    vllm_gpus: int = 0
    """GPUs given to vLLM alone (0 = colocated on the training GPUs)."""
    vllm_gpu_memory_utilization: float = 0.3
    """Share of each engine GPU vLLM may take."""
    tensor_parallel_size: int = 1
    """GPUs per vLLM engine; the engine count is engine GPUs / tensor_parallel_size."""
    max_model_len: int = 32768
    """vLLM's context cap (Qwen3's native 262,144 would need KV for 262k tokens per sequence)."""
    vllm_seqs: int = 4
    """Sequences the KV cache must hold at full max_model_len at once (shorter ones share the pool, so vLLM runs
    many more in practice)."""
    vllm_overhead_gb: float = 3.0
    """vLLM's activation peak and CUDA graphs per engine GPU (assumption, grows with max_num_batched_tokens)."""
    steps: int = 200
    """Optimiser steps of the run."""
    tasks_per_step: int = 4
    """Tasks per rollout batch (per training GPU: each rank rolls out its own tasks)."""
    group_size: int = 8
    """Rollouts per task (G)."""
    avg_turns: float = 10.0
    """Agent turns per episode (assumption: about the turn budget, since most episodes run out)."""
    gen_tokens_per_turn: float = 200.0
    """Generated tokens per agent turn (assumption for ReAct tool calls)."""
    avg_context: float = 8000.0
    """Tokens of a finished trajectory (assumption: TauBench's ~3k-token system prompt with tool schemas + turns)."""
    reflect_tokens_per_turn: float = 64.0
    """HERO's reflector output per agent turn (the recipe's cap)."""
    gen_tokens_per_s: float = 2500.0
    """Decode tokens/s of one engine with a full batch (assumption for a 4B model in bf16 on one H100; measure
    yours with benchmarks/bench_rollout.py and pass it)."""
    train_tflops: float = 250.0
    """Sustained training TFLOP/s per GPU (assumption: ~25% MFU of an H100's 989 dense bf16 TFLOP/s)."""
    eval_every: int = 25
    """Evaluate every N steps (0 = only at the end)."""
    eval_episodes: int = 460
    """Episodes per evaluation (TauBench-Retail test: 115 tasks x k=4)."""

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.method not in ("grpo", "sdpo", "full-demo", "hero"):
            raise ValueError(f"method must be grpo, sdpo, full-demo or hero, got {self.method!r}")
        if self.precision not in ("fp32", "bf16-mixed", "bf16"):
            raise ValueError(f"precision must be fp32, bf16-mixed or bf16, got {self.precision!r}")
        if self.teacher not in ("ema", "frozen", "ema-bf16", "current"):
            raise ValueError(f"teacher must be ema, frozen, ema-bf16 or current, got {self.teacher!r}")
        if self.rollout not in ("vllm", "hf"):
            raise ValueError(f"rollout must be vllm or hf, got {self.rollout!r}")
        for name in ("gpus", "lora_r", "train_seq_len", "tensor_parallel_size", "max_model_len", "vllm_seqs", "steps",
                     "tasks_per_step", "group_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise ValueError(f"vllm_gpu_memory_utilization must be in (0, 1), got {self.vllm_gpu_memory_utilization}")
        if not 0 <= self.vllm_gpus < self.gpus:
            raise ValueError(f"vllm_gpus must leave at least one training GPU: {self.vllm_gpus} of {self.gpus}")
        engine_gpus = self.vllm_gpus or self.gpus
        if self.rollout == "vllm" and engine_gpus % self.tensor_parallel_size:
            raise ValueError(f"tensor_parallel_size {self.tensor_parallel_size} does not divide the {engine_gpus} "
                             "engine GPUs")
        for name in ("gpu_mem_gb", "gen_tokens_per_s", "train_tflops", "avg_turns", "avg_context"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def train_gpus(self) -> int:
        return self.gpus - self.vllm_gpus


def activation_bytes_per_token_layer(s: ModelShape, compute_bytes: int) -> int:
    """Bytes autograd saves per token in one decoder layer (SDPA attention, SwiGLU MLP, RMSNorm in fp32).

    Norm inputs stay fp32 (HF RMSNorm upcasts); projection inputs/outputs are in the compute dtype: attention
    q, k, v, its output and the o-projection input; the MLP's gate, up, activation and product (x active
    experts for MoE); Qwen3's q/k norms. Checked against saved tensors on CPU by benchmarks/plan_check.py.
    """
    i = s.moe_intermediate_size * s.experts_per_token if s.num_experts else s.intermediate_size
    norms = 2 * 4 * s.hidden_size
    attn = compute_bytes * (2 * s.hidden_size + 3 * s.q_dim + 2 * s.kv_dim)
    mlp = compute_bytes * (4 * i)
    if s.qk_norm:  # Qwen3's per-head RMSNorm keeps its fp32 input and output for q and k
        norms += 2 * 4 * (s.q_dim + s.kv_dim)
    return norms + attn + mlp


def activation_bytes(s: ModelShape, tokens: int, compute_bytes: int, checkpointing: bool) -> tuple[int, int]:
    """(decoder layers, fp32 log-softmax) bytes autograd keeps for one forward of `tokens` tokens."""
    per_layer = activation_bytes_per_token_layer(s, compute_bytes)
    if checkpointing:  # each layer's fp32 input, plus the one layer being recomputed
        layers = tokens * (s.num_layers * 4 * s.hidden_size + per_layer)
    else:
        layers = tokens * s.num_layers * per_layer
    layers += tokens * s.hidden_size * (4 + compute_bytes)  # final norm's input and the LM head's input
    return layers, tokens * s.vocab_size * 4


@dataclass
class Plan:
    """What :func:`plan` computed: per-GPU GiB by item, the budgets they must fit, and the hours."""

    config: PlanConfig
    shape: ModelShape
    train: dict[str, float]
    train_budget_gib: float
    engine: dict[str, float]
    engine_budget_gib: float
    hours: dict[str, float]

    @property
    def train_total(self) -> float:
        return sum(self.train.values())

    @property
    def engine_total(self) -> float:
        return sum(self.engine.values())

    def problems(self) -> list[str]:
        """Why the plan does not fit (empty when it does)."""
        out = []
        if self.train_total > self.train_budget_gib:
            out.append(f"training needs {self.train_total:.1f} GiB per GPU, {self.train_budget_gib:.1f} GiB available")
        if self.engine and self.engine_total > self.engine_budget_gib:
            out.append(f"vLLM needs {self.engine_total:.1f} GiB per engine GPU, {self.engine_budget_gib:.1f} GiB "
                       "available at its gpu_memory_utilization")
        return out

    def fits(self) -> bool:
        return not self.problems()


def state_bytes(s: ModelShape, c: PlanConfig) -> dict[str, float]:
    """Bytes of weights, gradients, optimiser and teacher for the whole model (before sharding)."""
    p = s.n_params()
    master = 2 if c.precision == "bf16" else 4
    if c.lora:
        trainable = s.lora_params(c.lora_r)
        # the project keeps adapters in the same dtype as the base (fp32 unless precision=bf16)
        weights = p * master + trainable * master
    else:
        trainable = p
        weights = p * master
    teacher = 0
    if c.method != "grpo" and c.teacher != "current":
        # clone_frozen copies the whole model (with LoRA: base and adapters)
        teacher = (p + (trainable if c.lora else 0)) * (2 if c.teacher == "ema-bf16" else master)
    return {"weights": weights, "gradients": trainable * master, "optimizer (AdamW)": trainable * 2 * master,
            "teacher": teacher}


def plan(c: PlanConfig, shape: ModelShape | None = None) -> Plan:
    """Memory per GPU and hours for `c` (the model's shape is loaded from c.model unless given)."""
    c.validate()
    s = shape or load_shape(c.model)
    n_shard = c.train_gpus if c.shard else 1
    gpu_gib = c.gpu_mem_gb * 1e9 / GIB
    train = {k: v / n_shard / GIB for k, v in state_bytes(s, c).items()}
    if c.zero1 and not c.shard:
        train["optimizer (AdamW)"] /= c.train_gpus
    compute = 4 if c.precision == "fp32" else 2
    if c.precision == "bf16-mixed":
        copies = s.n_params() if n_shard == 1 else 2 * s.layer_params()
        train["bf16 compute copies"] = copies * 2 / GIB
    layers, logits_saved = activation_bytes(s, c.train_seq_len, compute, c.grad_checkpointing)
    train["activations"] = layers / GIB
    # the fp32 log-softmax autograd keeps, plus the logits alive while it is computed
    train["logits"] = (logits_saved + c.train_seq_len * s.vocab_size * compute) / GIB
    if n_shard > 1:
        # the larger of the two phases' gathers: the whole teacher next to the loss phase's activations, or the
        # whole student during rollouts, when the compute copies, activations and logits are not allocated
        whole = state_bytes(s, c)
        loss_phase = train.get("bf16 compute copies", 0.0) + train["activations"] + train["logits"]
        train["gathered weights (fsdp)"] = max(whole["teacher"] / GIB, whole["weights"] / GIB - loss_phase)
    train["runtime reserve"] = c.runtime_reserve_gb * 1e9 / GIB

    engine: dict[str, float] = {}
    engine_budget = 0.0
    train_budget = gpu_gib
    if c.rollout == "vllm":
        tp = c.tensor_parallel_size
        engine = {"vLLM weights (bf16)": s.n_params() * 2 / tp / GIB,
                  "vLLM KV cache": c.vllm_seqs * c.max_model_len * s.kv_bytes_per_token() / tp / GIB,
                  "vLLM activations + graphs": c.vllm_overhead_gb * 1e9 / GIB}
        engine_budget = gpu_gib * c.vllm_gpu_memory_utilization
        if not c.vllm_gpus:
            train_budget = gpu_gib - engine_budget
    return Plan(c, s, train, train_budget, engine, engine_budget, hours(s, c))


def hours(s: ModelShape, c: PlanConfig) -> dict[str, float]:
    """Wall-clock hours of generation, training and evaluation for the whole run (see the module docstring)."""
    ranks = c.train_gpus
    episodes = c.tasks_per_step * c.group_size * ranks
    gen_per_turn = c.gen_tokens_per_turn + (c.reflect_tokens_per_turn if c.method == "hero" else 0)
    engines = (c.vllm_gpus or c.gpus) // c.tensor_parallel_size if c.rollout == "vllm" else ranks
    gen_s = episodes * c.avg_turns * gen_per_turn / (engines * c.gen_tokens_per_s)
    active = s.n_params(active=True)
    student_tokens = episodes * c.avg_context
    # a teacher scores each distilled turn with its own context: on average half a trajectory per turn
    teacher_tokens = 0.0 if c.method == "grpo" else episodes * c.avg_turns * c.avg_context / 2
    flops = (8 if c.grad_checkpointing else 6) * active * student_tokens + 2 * active * teacher_tokens
    train_s = flops / (ranks * c.train_tflops * 1e12)
    n_evals = (c.steps // c.eval_every if c.eval_every else 0) + 1
    eval_s = n_evals * c.eval_episodes * c.avg_turns * c.gen_tokens_per_turn / (engines * c.gen_tokens_per_s)
    return {"rollout": c.steps * gen_s / 3600, "training": c.steps * train_s / 3600, "evaluation": eval_s / 3600}


# Changes tried, cheapest first, when a plan does not fit: (flag text, function of the config).
def _fixes(c: PlanConfig) -> list[tuple[str, dict]]:
    out = []
    if not c.grad_checkpointing:
        out.append(("--grad-checkpointing", {"grad_checkpointing": True}))
    if c.method != "grpo" and c.teacher in ("ema", "frozen"):
        out.append(("--teacher ema-bf16", {"teacher": "ema-bf16"}))
    if not c.shard and not c.zero1 and c.train_gpus > 1:
        out.append(("--zero1", {"zero1": True}))
    if not c.shard and c.train_gpus > 1:
        out.append(("--shard", {"shard": True}))
    if c.rollout == "vllm":
        for n in (c.max_model_len // 2, c.max_model_len // 4):
            if n >= 4096:
                out.append((f"--max-model-len {n}", {"max_model_len": n}))
        if c.vllm_seqs > 1:
            out.append((f"--vllm-seqs {max(1, c.vllm_seqs // 2)}", {"vllm_seqs": max(1, c.vllm_seqs // 2)}))
        for u in (0.4, 0.5, 0.6):
            if u > c.vllm_gpu_memory_utilization:
                out.append((f"--vllm-gpu-memory-utilization {u}", {"vllm_gpu_memory_utilization": u}))
    for g in (2 * c.gpus, 4 * c.gpus):
        if g <= 64:
            extra = {"gpus": g}
            if not c.shard:
                extra["shard"] = True
            out.append((f"--gpus {g}" + ("" if c.shard else " --shard"), extra))
    if c.train_seq_len > 8192:
        out.append((f"--train-seq-len {c.train_seq_len // 2}", {"train_seq_len": c.train_seq_len // 2}))
    if not c.lora:
        out.append(("--lora", {"lora": True}))
    return out


def suggest(c: PlanConfig, shape: ModelShape | None = None, max_changes: int = 4) -> tuple[str, Plan] | None:
    """The first config that fits with the fewest changes (singles, then pairs, then triples, cheapest first)."""
    fixes = _fixes(c)
    for k in range(1, max_changes + 1):
        for combo in itertools.combinations(fixes, k):
            keys = [key for _, kw in combo for key in kw]
            if len(keys) != len(set(keys)):
                continue
            kwargs = {key: v for _, kw in combo for key, v in kw.items()}
            candidate = dataclasses.replace(c, **kwargs)
            try:
                p = plan(candidate, shape)
            except ValueError:
                continue
            if p.fits():
                return " ".join(text for text, _ in combo), p
    return None


def render(p: Plan) -> str:
    """The plan as a plain-text table."""
    c, s = p.config, p.shape
    mode = f"LoRA r={c.lora_r}" if c.lora else "full fine-tuning"
    shard = f"sharded over {c.train_gpus} GPUs" if c.shard and c.train_gpus > 1 else "not sharded"
    lines = [f"model {s.name}: {s.n_params() / 1e9:.2f}B params ({s.n_params(active=True) / 1e9:.2f}B active), "
             f"{s.num_layers} layers, KV {s.kv_bytes_per_token() / 1024:.0f} KiB/token (bf16)",
             f"method {c.method}, {mode}, {c.precision}, {shard}, {c.train_gpus} training GPU(s)"
             + (f" + {c.vllm_gpus} vLLM GPU(s)" if c.vllm_gpus else ""),
             "", "per training GPU (GiB)"]
    for k, v in p.train.items():
        lines.append(f"  {k:<32}{v:8.1f}")
    lines.append(f"  {'total':<32}{p.train_total:8.1f}  of {p.train_budget_gib:.1f}")
    if p.engine:
        where = "its own GPUs" if c.vllm_gpus else "the training GPUs (colocated)"
        lines += ["", f"vLLM engine on {where}, TP={c.tensor_parallel_size}, max_model_len {c.max_model_len}, "
                      f"gpu_memory_utilization {c.vllm_gpu_memory_utilization}"]
        for k, v in p.engine.items():
            lines.append(f"  {k:<32}{v:8.1f}")
        lines.append(f"  {'total':<32}{p.engine_total:8.1f}  of {p.engine_budget_gib:.1f}")
    h = p.hours
    lines += ["", f"hours for {c.steps} steps: rollout {h['rollout']:.1f}, training {h['training']:.1f}, "
                  f"evaluation {h['evaluation']:.1f}, total {sum(h.values()):.1f} "
                  f"(at {c.gen_tokens_per_s:g} gen tokens/s per engine, {c.train_tflops:g} TFLOP/s per GPU)"]
    return "\n".join(lines)


def _field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a dataclass (the one place a field's meaning and unit are written)."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(cls)).body[0].body
    return {a.target.id: " ".join(d.value.value.split()) for a, d in zip(body, body[1:])
            if isinstance(a, ast.AnnAssign) and isinstance(d, ast.Expr) and isinstance(d.value, ast.Constant)}


def _parser() -> argparse.ArgumentParser:
    from hero_gym.cli import _Parser

    p = _Parser(prog="hero-gym plan", description=__doc__.split("\n")[0])
    p.add_argument("--config", metavar="RUN_FILE", default=None,
                   help="a run config (agents/recipes/*.toml): its settings and [plan] table; flags override it (default: none)")
    docs = _field_docs(PlanConfig)
    for f in dataclasses.fields(PlanConfig):
        opt = "--gpu-mem" if f.name == "gpu_mem_gb" else "--" + f.name.replace("_", "-")
        help_ = docs[f.name].replace("%", "%%") + " (default %(default)s)"
        if f.type == "bool":
            p.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default, help=help_)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            p.add_argument(opt, dest=f.name, type=kind, default=f.default, help=help_)
    return p


# Run config (TrainConfig) field -> PlanConfig field, for `hero-gym plan --config RUN_FILE`.
_FROM_RUN = {"model": "model", "lora": "lora", "lora_r": "lora_r", "precision": "precision", "teacher": "teacher",
             "grad_checkpointing": "grad_checkpointing", "max_context_tokens": "train_seq_len",
             "rollout_backend": "rollout", "vllm_gpu_memory_utilization": "vllm_gpu_memory_utilization",
             "vllm_tensor_parallel_size": "tensor_parallel_size", "vllm_max_model_len": "max_model_len",
             "steps": "steps", "tasks_per_step": "tasks_per_step", "group_size": "group_size",
             "eval_every": "eval_every"}


def plan_from_run_config(data: dict) -> tuple[list[str], dict]:
    """(the methods a run config trains, PlanConfig keyword arguments) from a run config mapping (the file
    `hero-gym train/sweep --config` reads): its training fields, then its ``[plan]`` table (hardware: gpus,
    gpu_mem_gb, vllm_gpus, ...; and assumed rates), which wins. Every key is checked as `hero-gym train` checks
    it, so a typo fails here too; the ``[plan]`` keys must be PlanConfig fields."""
    from hero_gym.agents.cli import CONFIG_SECTIONS, adapt_run_config, config_fields, sweep_parser
    from hero_gym.config_file import ConfigFileError, config_tokens, nearest

    data = adapt_run_config(data, [], sweep=True)
    config_tokens(data, sweep_parser(), config_fields(), CONFIG_SECTIONS)  # raises on an unknown key
    table = dict(data.get("plan", {}))
    names = {f.name for f in dataclasses.fields(PlanConfig)}
    for key in table:
        if key not in names:
            raise ConfigFileError(f"[plan]: unknown key {key!r}{nearest(key, names)}")
    kw = {dst: data[src] for src, dst in _FROM_RUN.items() if src in data}
    if "max_model_len" not in kw or kw["max_model_len"] is None:  # vLLM's cap as the trainer sets it by default
        from hero_gym.agents.base import TrainConfig

        d = TrainConfig()
        kw["max_model_len"] = data.get("max_context_tokens", d.max_context_tokens) + data.get("max_new_tokens",
                                                                                               d.max_new_tokens)
    if kw.get("precision") == "auto":  # the planner is for GPUs, where auto means bf16-mixed
        kw["precision"] = "bf16-mixed"
    if data.get("vllm_devices") and "vllm_gpus" not in table:  # the engine on GPUs of its own
        kw["vllm_gpus"] = len(str(data["vllm_devices"]).split(","))
    kw.update(table)
    methods = data.get("methods") or [PlanConfig.method]
    methods = methods if isinstance(methods, list) else [m.strip() for m in str(methods).split(",") if m.strip()]
    return methods, kw


def plan_main(argv: list[str] | None = None) -> int:
    """Print the plan; exit 0 when it fits, 1 (with the nearest config that fits) when it does not.

    With ``--config RUN_FILE`` the recipe's settings come from the file (one plan per method it trains; exit 1
    when any does not fit); flags given explicitly override them."""
    from hero_gym.config_file import read_config, split_config_arg

    path, rest = split_config_arg(list(sys.argv[1:] if argv is None else argv))
    if path is None:
        return _plan_one(_parser().parse_args(rest))
    methods, kw = plan_from_run_config(read_config(path))
    code = 0
    for i, method in enumerate(methods):
        defaults = _parser()
        defaults.set_defaults(**{**kw, "method": method})
        if len(methods) > 1:
            print(("\n" if i else "") + f"== {path}: {method} ==")
        code = max(code, _plan_one(defaults.parse_args(rest)))
    return code


def _plan_one(args) -> int:
    c = PlanConfig(**{k: v for k, v in vars(args).items() if k != "config"})
    p = plan(c)
    print(render(p))
    problems = p.problems()
    if not problems:
        print("\nfits")
        return 0
    print("\ndoes not fit: " + "; ".join(problems))
    found = suggest(c, p.shape)
    if found:
        flags, q = found
        print(f"nearest config that fits: add {flags} "
              f"(training {q.train_total:.1f} of {q.train_budget_gib:.1f} GiB"
              + (f", vLLM {q.engine_total:.1f} of {q.engine_budget_gib:.1f} GiB)" if q.engine else ")"))
    else:
        print("no config within three changes fits: use more or larger GPUs")
    return 1


if __name__ == "__main__":
    sys.exit(plan_main())
