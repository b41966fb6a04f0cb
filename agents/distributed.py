"""Data-parallel training on HuggingFace ``accelerate``: the glue between :class:`~hero_gym.agents.base.Trainer` and
PyTorch's DistributedDataParallel (DDP), set up by an ``accelerate.Accelerator``.

Every rank rolls out its own tasks and backpropagates its own loss, micro-batch by micro-batch, into its local
``.grad`` buffers. How many backward passes a rank runs depends on its rollouts (how many turns got a privileged
block, how long the trajectories are), and a rank may have no loss tokens at all. DDP's usual contract (one
synchronising backward per forward on every rank) would deadlock there, so:

- the forwards that compute losses call the *unwrapped* model, which DDP does not see: their backward passes only
  accumulate locally (what ``no_sync`` does);
- once per optimiser step :meth:`DataParallel.sync_gradients` runs one zero-weighted backward through the DDP
  wrapper on every rank. It touches every trainable parameter, so DDP's reducer all-reduces (averages) all of the
  accumulated gradients in its buckets: one collective per ~25 MB bucket instead of one per parameter, and every
  rank joins it whatever its batch held.

The DDP wrapper owns the same parameter tensors as the model, so the model itself (generation, ``state_dict``,
``save_pretrained``, LoRA merging) is used unchanged; rank 0 alone logs, evaluates and checkpoints.

With ``strategy="zero1"`` the AdamW moments (8 of the 16 bytes per trainable parameter of fp32 training) are
sharded over the ranks by PyTorch's ``ZeroRedundancyOptimizer`` (ZeRO stage 1): each rank updates its share of
the parameters and broadcasts them. Weights and gradients stay whole on every rank, so forwards need no
collective; the optimiser step is one collective per update, which every rank already runs in lockstep.
Checkpoints gather the moments on rank 0 first (:meth:`DataParallel.before_save`) and hold the same optimiser state
dict as a single-process run, so either kind of run resumes the other's checkpoint.

The step's loss is the mean over ranks of each rank's batch loss, exactly as over ``grad_accum`` batches in one
process: N ranks x A accumulated batches train like one process with ``grad_accum = N x A`` on the same batches.

With ``strategy="fsdp"`` (ZeRO-3, :mod:`hero_gym.agents.fsdp`) weights, gradients, AdamW moments and teacher
copies are sharded by PyTorch FSDP2, each decoder layer gathered for its own forward and backward. Those
collectives need every rank to run the same sequence of passes, which rollouts and scoring do not on their own
(HF ``generate`` stops when its own sequences end; a rank scores as many forwards as its rollouts need), so:
rollouts and rank 0's evaluation run on the whole model gathered once (no collective inside), teacher copies are
gathered whole for the loss phase, and the student's loss passes go through a gate where a rank with fewer of
them runs zero-gradient dummy passes. Checkpoints hold full tensors, as above.
"""

from __future__ import annotations

import contextlib
import os

import torch

STRATEGIES = ("ddp", "zero1", "fsdp")
# How long a rank waits in a collective before the run fails (rank 0's periodic evaluations happen in between).
COLLECTIVE_TIMEOUT_S = 6 * 3600


class _GradSync(torch.nn.Module):
    """Holds the model so DDP sees its parameters; its forward is a zero that depends on every trainable one."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self) -> torch.Tensor:
        # One element of each parameter times 0: every parameter's gradient hook fires (so DDP reduces every
        # bucket) and adds exactly 0 to the gradient accumulated by the step's real backward passes.
        firsts = [p.reshape(-1)[:1].float() for p in self.model.parameters() if p.requires_grad]
        return torch.cat(firsts).sum() * 0.0


class DataParallel:
    """One process's share of a data-parallel run launched by ``torchrun`` or ``accelerate launch``."""

    def __init__(self, device: str = "auto", strategy: str = "ddp"):
        if strategy not in STRATEGIES:
            raise ValueError(f"distributed_strategy must be one of {STRATEGIES}, got {strategy!r}")
        if "WORLD_SIZE" not in os.environ:
            raise ValueError("distributed=True needs a launcher (torchrun or accelerate launch) that sets "
                             "WORLD_SIZE/RANK")
        from datetime import timedelta

        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

        cpu = device == "cpu" or not torch.cuda.is_available()
        # broadcast_buffers off: DDP's forward is only the gradient-sync zero, and rank 0's buffers (rotary
        # tables) are already copied to every rank when the wrapper is built.
        ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
        # Rank 0 evaluates alone (hundreds of episodes) while the others wait in the next step's collective; the
        # default 30-minute collective timeout would kill such a run.
        group = InitProcessGroupKwargs(timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        self.accelerator = Accelerator(cpu=cpu, kwargs_handlers=[ddp, group])
        self.rank = self.accelerator.process_index
        self.world_size = self.accelerator.num_processes
        self.device = self.accelerator.device
        self.strategy = strategy
        self._ddp = None
        self.sharding = None
        if strategy == "fsdp":
            from hero_gym.agents.fsdp import Sharding

            self.sharding = Sharding()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """Register `model`'s trainable parameters with DDP (rank 0's weights are copied to every rank); returns
        `model` itself, which the trainer keeps using for everything. fsdp shards `model` in place instead."""
        if self.sharding is not None:
            return self.sharding.wrap(model)
        self._ddp = self.accelerator.prepare_model(_GradSync(model))
        return model

    def sync_gradients(self) -> None:
        """Average the gradients accumulated since the last step over all ranks (a collective every rank joins)."""
        if self.sharding is not None:
            return self.sharding.sync_gradients()  # FSDP reduce-scattered every backward; pad until all are done
        if self._ddp is None:
            raise RuntimeError("DataParallel.wrap(model) must run before sync_gradients")
        self._ddp().backward()

    def optimizer(self, params, **adamw_kwargs) -> torch.optim.Optimizer:
        """AdamW over `params`: whole on every rank (ddp) or with its moments sharded over the ranks (zero1)."""
        if self.strategy == "zero1":
            from torch.distributed.optim import ZeroRedundancyOptimizer

            return ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.AdamW, **adamw_kwargs)
        return torch.optim.AdamW(params, **adamw_kwargs)

    def gathered(self, models: list[torch.nn.Module] | None = None):
        """Every rank: `models` (default: the trained one) whole for the block (fsdp; nothing to do otherwise)."""
        return self.sharding.gathered(models) if self.sharding is not None else contextlib.nullcontext()

    def loss_phase(self):
        """Every rank, around a step's update: keeps fsdp's forwards and backwards in lockstep."""
        return self.sharding.loss_phase() if self.sharding is not None else contextlib.nullcontext()

    def before_save(self, optimizer: torch.optim.Optimizer, extra: list[torch.nn.Module] = ()) -> None:
        """Run on every rank before rank 0 saves: gathers a sharded optimiser's state on rank 0 (a collective);
        fsdp gathers the model, the `extra` modules (teacher copies) and the optimiser whole."""
        if self.sharding is not None:
            return self.sharding.before_save(optimizer, list(extra))
        if hasattr(optimizer, "consolidate_state_dict"):
            optimizer.consolidate_state_dict(to=0)

    def gather(self, obj):
        """`obj` of every rank, as a list in rank order (picklable objects)."""
        from accelerate.utils import gather_object

        return gather_object([obj])


def reduce_stats(per_rank: list[dict], mean_keys: tuple[str, ...], same_keys: tuple[str, ...]) -> dict:
    """One step record from every rank's stats: `mean_keys` averaged over the ranks that report them, `same_keys`
    (identical on every rank, e.g. the norm of the averaged gradient) taken from rank 0, every other number summed
    (token and turn counts)."""
    out: dict = {}
    keys = list(dict.fromkeys(k for s in per_rank for k in s))
    for k in keys:
        vals = [s[k] for s in per_rank if k in s]
        if k in same_keys or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[k] = per_rank[0].get(k, vals[0])
        elif k in mean_keys:
            out[k] = sum(vals) / len(vals)
        else:
            out[k] = sum(vals)
    return out
