"""Does SDPO's self-teacher endorse the student's invalid actions? (session 14)

SDPO's teacher sees the turn's context plus the observation that followed the student's action. In WebShop the
observation after an invalid click quotes the action ("'blue voice' cannot be clicked on this page; ..."), so a
teacher that copies from its context may rate the student's mistake higher than the student did, and distillation
then pulls the student towards it.

Rebuilds an SDPO run's trainer from its config.json (the Base as student and teacher: step 0's weights), draws the
rollouts of its first STEPS steps with the run's seed (step 1's are the run's own, checked against its credit log;
later steps are the Base's rollouts on the run's tasks of those steps), and scores every agent turn's sampled
action under the student's context (S) and the run's teacher context (T = S + the next-observation block). It
reports, per kind of turn (invalid; search; click on a product ID; other valid click), how far T moves the
action's log-probability from S, per token:

    OMP_NUM_THREADS=1 python results/sweep-cpu-webshop-warmstart/sdpo_probe.py RUN_DIR [STEPS] > OUT.txt

Scoring runs under the trainer's autocast, as the run's teacher scored.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from hero_gym.agents.scoring import action_logits
from hero_gym.agents.sdpo import SDPOConfig, SDPOTrainer
from invalid_kinds import ASIN
from probe_rollouts import rebuild, rollouts


def logp(tr, ctx: list[int], ids: list[int]) -> float:
    """Summed log-probability of action ids `ids` after `ctx`, at the run's temperature."""
    logits, _, _ = action_logits(tr.model, [ctx], [ids], tr.pad_id, tr.config.temperature)
    row = torch.log_softmax(logits[0].float(), dim=-1)[-len(ids):]
    return float(row.gather(1, torch.tensor(ids)[:, None]).sum())


def kind(turn) -> str:
    """invalid, search, product click (a click on an ASIN such as b08jd14gjf) or other click."""
    if turn.invalid:
        return "invalid"
    if turn.action.startswith("search["):
        return "search"
    return "product click" if ASIN.fullmatch(turn.action.strip()) else "other click"


def main(run: str, steps: int = 1) -> None:
    if json.loads((Path(run) / "config.json").read_text())["train"].get("method") != "sdpo":
        raise SystemExit(f"{run} is not an SDPO run")
    tr = rebuild(run, SDPOTrainer, SDPOConfig)
    drawn, checked = rollouts(tr, run, steps)
    rows = []
    for step, groups in drawn:
        for group in groups:
            for traj in group:
                for t, turn in enumerate(traj.turns):
                    block = tr.privileged_block(traj, t, group)
                    if block is None or not turn.action_token_ids:
                        continue
                    ids = list(turn.action_token_ids)
                    s_ids = tr.student_ids(traj, t)
                    with torch.no_grad(), tr.autocast():
                        s, te = logp(tr, s_ids, ids), logp(tr, tr.teacher_builder.build(s_ids, block), ids)
                    arg = turn.action.partition("[")[2].rstrip("]").strip().lower()
                    rows.append({"step": step + 1, "task": traj.task_index, "turn": t + 1, "action": turn.action,
                                 "invalid": bool(turn.invalid), "quoted": bool(arg) and arg in (turn.observation or "").lower(),
                                 "n": len(ids), "S": s, "T": te, "kind": kind(turn)})
                    print(f"step {step + 1} task {traj.task_index} turn {t + 1} scored", file=sys.stderr, flush=True)
    print(f"run {run}; Base as student and teacher; {steps} steps of rollouts "
          f"(step 1's {checked} episodes equal the run's credit log action for action)")
    print(f"agent turns scored: {len(rows)}\n")
    print("| turns | n | action quoted in the next observation | mean log p, student S | teacher T | "
          "T - S per token: mean, median | T > S |")
    print("|---|---|---|---|---|---|---|")
    for name in ("invalid", "valid", "search", "product click", "other click"):
        sel = [r for r in rows if name in (r["kind"], "valid" if r["kind"] != "invalid" else "")]
        if not sel:
            print(f"| {name} | 0 | | | | | |")
            continue
        s, te = np.array([r["S"] for r in sel]), np.array([r["T"] for r in sel])
        d = (te - s) / np.array([r["n"] for r in sel])
        print(f"| {name} | {len(sel)} | {sum(r['quoted'] for r in sel)} | {s.mean():.2f} | {te.mean():.2f} | "
              f"{d.mean():+.3f}, {np.median(d):+.3f} | {int((te > s).sum())} of {len(sel)} |")
    print("\nper turn (step, task, turn, invalid?, quoted?: action; log p S -> T):")
    for r in rows:
        print(f"  {r['step']} {r['task']} t{r['turn']} {'INVALID' if r['invalid'] else 'valid'}"
              f"{' quoted' if r['quoted'] else ''}: {r['action'][:70]!r}; {r['S']:.2f} -> {r['T']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
