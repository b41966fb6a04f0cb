"""Fully sharded data parallel training (``distributed_strategy="fsdp"``) with PyTorch FSDP2 (``fully_shard``).

Each decoder layer and the root (embeddings, final norm, LM head) is sharded over the ranks: a rank stores 1/N of
the weights, gradients and AdamW moments. A forward all-gathers one layer's shards at a time and drops them after
use, a backward gathers them again and reduce-scatters (averages) the layer's gradient. Those collectives pair up
across ranks by order only, so every rank must run the *same sequence* of forwards and backwards; this module
keeps the ranks in that lockstep although their rollouts make them run different numbers of passes:

- **Rollouts, evaluation, export** run under :meth:`Sharding.gathered`: every rank all-gathers the whole model once
  (the weights are whole on every rank, in the training dtype, for the phase) and keeps it unsharded, so HF
  ``generate`` and rank 0's solo evaluation run no collective at all. The rollout phase itself is in lockstep:
  every rank collects ``grad_accum`` batches per step.
- **Teacher / reference copies** (EMA, frozen, GRPO's reference) are sharded like the student and gathered whole
  for the whole loss phase (:meth:`Sharding.loss_phase`), so their no-grad scoring forwards need no collective.
- **Student forwards of the loss phase** pass a gate (a forward pre-hook on the root): before each one, the ranks
  all-gather what they are about to run: a no-grad forward, a forward whose backward follows, or nothing more
  (the rank has reached :meth:`Sharding.sync_gradients`). When they differ, the ranks that want something else
  run a *dummy* pass of the chosen kind (a 1-token forward, and its backward of ``0 * logits``), then ask again.
  So the collective sequences match, and a rank with fewer (or no) micro-batches pads with zero-gradient passes.
  A loss forward must be followed by its backward before the rank's next student forward (true of every method
  here); the gate raises otherwise instead of hanging.
- **Gradients** are reduce-scattered by every backward with FSDP2's default averaging over ranks (dummy backward
  passes add exactly 0), so after the step's passes a rank holds its shard of the mean over ranks of their
  accumulated gradients: N ranks x A accumulated batches == one process with ``grad_accum = N x A``, as ddp.
- **Checkpoints and export** hold full tensors: every rank joins the gathers (:meth:`Sharding.full_state`,
  :meth:`Sharding.full_optimizer_state`), rank 0 writes, and the optimiser state is keyed by parameter index as a
  single process's AdamW keys it, so either kind of run resumes the other's checkpoint.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist

NOGRAD, LOSS, DONE = 0, 1, 2  # what a rank runs next in the loss phase (the gate runs the smallest first)


def _fsdp_modules(model: torch.nn.Module) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules to shard one by one: the classes HF marks as not to be split (the decoder layers)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"fsdp: found no decoder layers to shard in {type(model).__name__} (no _no_split_modules)")
    return layers


def shard(model: torch.nn.Module) -> torch.nn.Module:
    """Shard `model` in place: each decoder layer, then the root. Every rank must pass the same weights."""
    from torch.distributed.fsdp import fully_shard

    for layer in _decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model


class Sharding:
    """The fsdp strategy of :class:`~hero_gym.agents.distributed.DataParallel`: sharding, lockstep, state dicts."""

    def __init__(self):
        self.model: torch.nn.Module | None = None
        self.template: torch.nn.Module | None = None  # unsharded initial weights, for teacher copies
        self.frozen: list[torch.nn.Module] = []
        self._gate_on = False
        self._in_dummy = False
        self._awaiting_backward = False
        self._saved: dict = {}
        self.dummy_passes = 0  # padding passes run so far (tests check the lockstep path ran)

    # ----- setup ------------------------------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        import copy

        # Teacher and reference copies are made later (Trainer.prepare) from these initial weights.
        self.template = copy.deepcopy(model)
        self.model = shard(model)
        # prepend: the gate runs before FSDP's own pre-forward hook, so a dummy pass is not nested in a real one
        model.register_forward_pre_hook(self._gate_hook, prepend=True)
        return model

    def frozen_copy(self, dtype: torch.dtype | None = None) -> torch.nn.Module:
        """A sharded no-grad copy of the initial weights (teacher / reference), optionally cast before sharding."""
        import copy

        if self.template is None:
            raise RuntimeError("fsdp: frozen copies are made during Trainer setup, from the initial weights")
        twin = copy.deepcopy(self.template)
        if dtype is not None:
            twin.to(dtype)
        twin.eval()
        for p in twin.parameters():
            p.requires_grad_(False)
        self.frozen.append(shard(twin))
        return twin

    def drop_template(self) -> None:
        self.template = None

    # ----- whole weights for collective-free phases -------------------------------------------------------------
    @contextlib.contextmanager
    def gathered(self, models: list[torch.nn.Module] | None = None):
        """Every rank: all-gather `models` (default: the student) whole and keep them so until the block ends."""
        mods = [m for model in (models if models is not None else [self.model]) for m in _fsdp_modules(model)]
        for m in mods:
            m.set_reshard_after_forward(False, recurse=False)
            m.unshard()
        try:
            yield
        finally:
            for m in mods:
                m.reshard()
                m.set_reshard_after_forward(True, recurse=False)

    @contextlib.contextmanager
    def loss_phase(self):
        """The forwards and backwards of one step's update: teacher copies whole, student forwards gated."""
        with self.gathered(self.frozen):
            self._gate_on, self._awaiting_backward = True, False
            try:
                yield
            finally:
                self._gate_on = False

    # ----- lockstep ----------------------------------------------------------------------------------------------
    def _gate_hook(self, module, args):
        if not self._gate_on or self._in_dummy:
            return
        kind = LOSS if torch.is_grad_enabled() else NOGRAD
        if self._awaiting_backward:
            raise RuntimeError("fsdp: a student forward ran before the previous loss forward's backward; the ranks' "
                               "collectives would no longer pair up")
        self._agree(kind)
        self._awaiting_backward = kind == LOSS

    def after_backward(self) -> None:
        self._awaiting_backward = False

    def _agree(self, kind: int) -> None:
        """Return when every rank runs `kind` next; meanwhile run dummy passes of what the others run first."""
        while True:
            kinds = [torch.zeros(1, dtype=torch.long) for _ in range(dist.get_world_size())]
            dist.all_gather(kinds, torch.tensor([kind]))
            chosen = min(int(k) for k in kinds)
            if chosen == kind:
                return  # this rank runs its own pass (or, DONE for all, leaves the loss phase)
            self._dummy(chosen)

    def _dummy(self, kind: int) -> None:
        """A 1-token pass of `kind` through the student: the same collectives as a real one, a zero gradient."""
        device = next(p for p in self.model.parameters()).device
        ids = torch.zeros((1, 1), dtype=torch.long, device=device)
        self._in_dummy = True
        self.dummy_passes += 1
        try:
            with torch.set_grad_enabled(kind == LOSS):
                out = self.model(input_ids=ids, use_cache=False).logits
                if kind == LOSS:
                    (out.float().sum() * 0.0).backward()
        finally:
            self._in_dummy = False

    def sync_gradients(self) -> None:
        """Every rank, once per update: pad with dummy passes until every rank has run all its real ones."""
        if self._awaiting_backward:
            raise RuntimeError("fsdp: the update started with a loss forward whose backward never ran")
        self._agree(DONE)

    # ----- full tensors (collectives: every rank calls them in the same order) -----------------------------------
    def full_state(self, module: torch.nn.Module) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_state(self, module: torch.nn.Module, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))

    def _names(self) -> list[str]:
        # the optimiser's parameter order (Trainer builds AdamW over the trainable parameters in this order)
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    def full_optimizer_state(self, optimizer) -> dict:
        """AdamW's state with full tensors, keyed by parameter index like a single process's ``state_dict()``."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        sd = get_optimizer_state_dict(self.model, optimizer,
                                      options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if "state" not in sd:
            return {}  # cpu_offload gathers onto rank 0 alone; the other ranks get nothing to save
        index = {n: i for i, n in enumerate(self._names())}
        return {"state": {index[n]: s for n, s in sd["state"].items()},
                "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in sd["param_groups"]]}

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        names = self._names()
        sd = {"state": {names[i]: s for i, s in state["state"].items()},
              "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}
        set_optimizer_state_dict(self.model, optimizer, sd, options=StateDictOptions(full_state_dict=True))

    def before_save(self, optimizer, extra: list[torch.nn.Module]) -> None:
        """Every rank: gather the model, `extra` modules and the optimiser whole for rank 0's checkpoint."""
        self._saved = {id(m): self.full_state(m) for m in [self.model, *extra]}
        self._saved["optimizer"] = self.full_optimizer_state(optimizer)

    def saved(self, key) -> dict:
        return self._saved[key if isinstance(key, str) else id(key)]


def local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (the tensor itself otherwise): elementwise work on sharded parameters."""
    return t.to_local() if hasattr(t, "to_local") else t
