"""Credit records: the per-token teacher-student divergences of a few sampled rollouts per training step.

The distillation loss is a token mean of one divergence per action token; that per-token value says how much the
teacher (who saw the privileged block) disagrees with the student on that token, the seed paper's credit
assignment picture. The trainer computes it anyway; this module keeps it for a bounded sample so that
``hero-gym view`` and ``hero-gym plot credit`` can show it.

Files: ``OUT_DIR/credit/step_NNNNN.jsonl``, one JSON line per sampled rollout, NNNNN being the 1-based step number of
train_log.jsonl. A line holds the rollout (task, seed, reward, termination, instruction) and every turn: the action
text, the observation, invalid marks and, for each distilled turn, the privileged block the teacher saw, the action's
token ids, each token decoded on its own, and ``loss``: the divergence (nats, by the method's alpha/top-K) of each
token, the term the step's token-mean loss averages.

Bounds (documented in the README's Viewer section): the first ``credit_rollouts_per_step`` rollouts of a step in
batch order (whole groups first, so siblings of one task sit together; 0 turns logging off); every stored text is
cut to :data:`MAX_TEXT_CHARS` characters (head and tail kept); action tokens are bounded by ``max_new_tokens``. A
step's file is rewritten when the step is redone after a resume. Only rank 0 writes. Reading: hero_gym.viewer.credit.
"""

from __future__ import annotations

import json

from hero_gym.types import Trajectory
from hero_gym.viewer.credit import credit_path

MAX_TEXT_CHARS = 8000
"""Cap on every text stored per rollout (instruction, action, observation, privileged block)."""


def cut(text: str | None, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` at most `limit` characters long: head and tail kept, the cut marked with its size."""
    text = text or ""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} [... {len(text) - 2 * half} characters not stored ...] {text[-half:]}"


class CreditLog:
    """Keeps the per-token losses of a trainer's first `credit_rollouts_per_step` rollouts per step, and writes them.

    Use per rollout batch: ``batch = log.batch(groups)``, then ``batch.add(item, per_token_loss)`` for scored turns,
    then ``batch.write()``.
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.limit = int(getattr(trainer.config, "credit_rollouts_per_step", 0))
        self._step: int | None = None  # step whose rollouts are being sampled
        self._taken = 0
        self._written: int | None = None  # step whose file this process has started (rewritten on first write)

    def batch(self, groups: list[list[Trajectory]]) -> "CreditBatch":
        tr = self.trainer
        step = tr.step + 1
        if step != self._step:
            self._step, self._taken = step, 0
        trajs = [t for g in groups for t in g]
        room = self.limit - self._taken if tr.is_main else 0
        keep = list(range(min(max(room, 0), len(trajs))))
        self._taken += len(keep)
        return CreditBatch(self, step, groups, keep)

    def _write(self, step: int, lines: list[str]) -> None:
        path = credit_path(self.trainer.out_dir, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "a" if self._written == step else "w"
        with open(path, mode, encoding="utf-8") as f:
            f.write("".join(lines))
        self._written = step


class CreditBatch:
    """The sampled rollouts of one rollout batch and the per-token losses gathered for them."""

    def __init__(self, log: CreditLog, step: int, groups, keep: list[int]):
        self.log, self.step, self.groups, self.keep = log, step, groups, set(keep)
        self.losses: dict[tuple[int, int], tuple[list[int], list[float], str | None]] = {}

    def add(self, item, loss) -> None:
        """Record one scored turn (a TurnItem; `loss` = its per-token divergence, one value per action token)."""
        if item.traj_index not in self.keep:
            return
        # float32 values: 8 significant digits keep every bit that matters and a third of the bytes
        values = [float(f"{v:.8g}") for v in loss.detach().float().reshape(-1).tolist()]
        if len(values) != len(item.action_ids):
            raise ValueError(f"{len(values)} loss values for {len(item.action_ids)} action tokens")
        self.losses[(item.traj_index, item.turn_index)] = (list(item.action_ids), values, item.extra.get("block"))

    def write(self) -> None:
        if not self.keep:
            return
        tr = self.log.trainer
        mc = getattr(tr, "method_config", None)
        trajs = [t for g in self.groups for t in g]
        size = len(self.groups[0]) if self.groups else 1
        lines = []
        for k in sorted(self.keep):
            rec = rollout_record(trajs[k], self.losses, k, tr.tokenizer)
            rec.update(step=self.step, method=tr.method_name, group=k // size, member=k % size,
                       alpha=getattr(mc, "alpha", None), topk=getattr(mc, "topk", None))
            lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
        self.log._write(self.step, lines)


def rollout_record(traj: Trajectory, losses: dict, k: int, tokenizer) -> dict:
    """One credit line: the rollout and, for each distilled turn, block, token ids, decoded tokens and losses."""
    turns = []
    for t, turn in enumerate(traj.turns):
        row = {"turn": t, "action": cut(turn.action), "observation": cut(turn.observation), "invalid": turn.invalid,
               "invalid_reason": turn.info.get("invalid_reason"), "distilled": (k, t) in losses}
        if (k, t) in losses:
            ids, values, block = losses[(k, t)]
            row.update(privileged=cut(block), token_ids=ids, tokens=[tokenizer.decode([i]) for i in ids], loss=values)
        turns.append(row)
    return {"env": traj.env_id, "split": traj.split, "task": traj.task_index, "seed": traj.seed, "reward": traj.reward,
            "success": traj.success, "termination_reason": traj.termination_reason, "error": traj.error,
            "instruction": cut(traj.initial_observation), "turns": turns}
