"""How far the Full-Demo self-teacher's page-aligned hint moves it towards the hinted action (session 13).

Rebuilds a Full-Demo run's trainer from its config.json (the Base as student and teacher: step 0's weights), draws
the rollouts of its first STEPS steps (default 1) with the run's seed (step 1's are the run's own step-1 rollouts,
checked against its credit log), and for every turn whose page-aligned hint names an action other than the student's,
scores both actions under three contexts:

- S: the student's context (what the policy saw);
- D: S + the demonstration block without the hint line;
- T: S + the demonstration block + the hint line (what the run's teacher saw).

It reports, per context, the log-probability of the hinted action and of the student's, how often the hinted
action is the more likely one, and at the first token where the two actions differ, the probability of each
one's token. A teacher that reads its hint puts most of that token's mass on the hint's token under T:

    OMP_NUM_THREADS=1 python results/sweep-cpu-webshop-warmstart/teacher_probe.py RUN_DIR [STEPS] > OUT.txt

Scoring runs under the trainer's autocast (bf16 on a CPU with native bf16, as the run's teacher scored). A turn's
three contexts of up to ~5,000 tokens make this slow beside two evaluation lanes: about 20 minutes for step 1.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from hero_gym.agents.full_demo import FullDemoConfig, FullDemoTrainer, page_aligned_step
from hero_gym.agents.scoring import action_logits
from probe_rollouts import rebuild, rollouts

def seq_scores(tr, ctx: list[int], a: list[int], b: list[int]):
    """Summed log-probs of action ids `a` and `b` after `ctx`, and the two first-difference token probabilities."""
    logits, _, _ = action_logits(tr.model, [ctx, ctx], [a, b], tr.pad_id, tr.config.temperature)
    lp = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for row, ids in zip(lp, (a, b)):
        tail = row[row.shape[0] - len(ids):]
        out.append(float(tail.gather(1, torch.tensor(ids)[:, None]).sum()))
    k = next(i for i in range(min(len(a), len(b))) if a[i] != b[i])
    first = lp[0, lp.shape[1] - len(a) + k].exp()  # a and b share tokens before k, so row 0's position k serves both
    return out[0], out[1], float(first[a[k]]), float(first[b[k]])


def main(run: str, steps: int = 1) -> None:
    conf = json.loads((Path(run) / "config.json").read_text())
    if conf["train"].get("method") != "full-demo":
        raise SystemExit(f"{run} is not a Full-Demo run")
    mc = FullDemoConfig(**conf["method_config"])
    if not (mc.demo_step_hint and mc.demo_hint_align == "page"):
        raise SystemExit(f"{run} is not a Full-Demo run with the page-aligned hint")
    tr = rebuild(run, FullDemoTrainer, FullDemoConfig)
    eos = tr.tokenizer.convert_tokens_to_ids("<|im_end|>")
    drawn, checked = rollouts(tr, run, steps)
    rows = []
    for step, groups in drawn:
        tr.prepare_groups(groups)
        for group in groups:
            for traj in group:
                demo = tr._demo_trajs.get(id(traj))
                if demo is None:
                    continue
                block = tr._demos[id(traj)]
                for t, turn in enumerate(traj.turns):
                    j = page_aligned_step(demo, traj, t)
                    if j is None or not turn.action_token_ids or demo.turns[j].action == turn.action:
                        continue
                    hint = demo.turns[j].action
                    a = list(tr.tokenizer.encode(hint, add_special_tokens=False)) + [eos]
                    b = list(turn.action_token_ids)
                    if list(tr.tokenizer.encode(turn.action, add_special_tokens=False)) + [eos] != b:
                        continue  # an action whose text does not re-tokenise to the sampled ids
                    s_ids = tr.student_ids(traj, t)
                    with torch.no_grad(), tr.autocast():
                        res = {name: seq_scores(tr, ctx, a, b) for name, ctx in (
                            ("S", s_ids), ("D", tr.teacher_builder.build(s_ids, block)),
                            ("T", tr.teacher_builder.build(s_ids, tr.privileged_block(traj, t, group))))}
                    rows.append({"step": step + 1, "task": traj.task_index, "turn": t + 1, "hint": hint,
                                 "student": turn.action, **{f"{n}_{k}": v for n, r in res.items()
                                                            for k, v in zip(("lp_hint", "lp_student", "p1_hint",
                                                                             "p1_student"), r)}})
                    print(f"step {step + 1} task {traj.task_index} turn {t + 1} scored", file=sys.stderr, flush=True)
    print(f"run {run}; Base as student and teacher; {steps} steps of rollouts "
          f"(step 1's {checked} episodes equal the run's credit log action for action)")
    print(f"turns whose page-aligned hint names another action than the student's: {len(rows)}\n")
    print("| context | mean log p(hint action) | mean log p(student action) | hint more likely | "
          "first differing token: p(hint's) | p(student's) |")
    print("|---|---|---|---|---|---|")
    names = {"S": "S: student", "D": "D: + demonstration", "T": "T: + demonstration + hint (the teacher)"}
    for n in "SDT":
        lh = np.array([r[f"{n}_lp_hint"] for r in rows])
        ls = np.array([r[f"{n}_lp_student"] for r in rows])
        ph = np.array([r[f"{n}_p1_hint"] for r in rows])
        ps = np.array([r[f"{n}_p1_student"] for r in rows])
        print(f"| {names[n]} | {lh.mean():.2f} | {ls.mean():.2f} | {int((lh > ls).sum())} of {len(rows)} | "
              f"{np.median(ph):.3f} (median), {ph.mean():.3f} (mean) | {np.median(ps):.3f}, {ps.mean():.3f} |")
    gain = np.array([r["T_lp_hint"] - r["S_lp_hint"] for r in rows])
    hint_only = np.array([r["T_lp_hint"] - r["D_lp_hint"] for r in rows])
    print(f"\nlog p(hint action), teacher minus student: median {np.median(gain):+.2f}, mean {gain.mean():+.2f} nats; "
          f"the hint line's own share (T minus D): median {np.median(hint_only):+.2f}, mean {hint_only.mean():+.2f}")
    print("\nper turn (step, task, turn: hint / student; p of the first differing token under S -> T):")
    for r in rows:
        print(f"  {r['step']} {r['task']} t{r['turn']}: {r['hint']} / {r['student']}; "
              f"hint {r['S_p1_hint']:.3f} -> {r['T_p1_hint']:.3f}, "
              f"student {r['S_p1_student']:.3f} -> {r['T_p1_student']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
