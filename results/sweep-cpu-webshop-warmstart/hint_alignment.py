"""How the Full-Demo step hint (demo_step_hint) lines up with the student's turns of a run's training rollouts.

With demo_hint_align=turn the hint names the demonstration's action at the same turn index; with
demo_hint_align=page, the demonstration's next action on the page the student is on (no hint when the
demonstration never showed that page). For every distilled turn in credit/step_N.jsonl this sorts the student's
action against the hint, and sums the turn's per-token loss per class. A teacher block with neither hint nor the
"already ended" line is counted as "no hint": under page alignment, a page the demonstration never showed; a run
without demo_step_hint shows up as all "no hint":

    python results/sweep-cpu-webshop-warmstart/hint_alignment.py RUN [RUN ...]
"""
import collections
import json
import re
import sys
from pathlib import Path

HINT = re.compile(r"the action at this step \(turn \d+\) was: (.*)$")
PAGE_HINT = re.compile(r"on the page the agent is on now, the next action was: (.*)$")
ENDED = "The worked example had already ended at this step"


def classify(action: str, hint: str | None, actions: list[str], before: list[str], invalid: bool) -> str:
    if hint is None:
        return "demonstration already ended"
    if action == hint:
        return "equal"
    if hint in actions:
        return "hint's action taken at another turn"
    if action.startswith("search") or hint.startswith("search"):
        return "another search"
    if re.match(r"click\[b0", action) or re.match(r"click\[b0", hint):
        return "another product"
    if invalid:
        return "student's action invalid"
    if action in before:
        return "student repeats an earlier click"
    return "another option or buy now"


for run in map(Path, sys.argv[1:]):
    print(run.name)
    for f in sorted((run / "credit").glob("step_*.jsonl")):
        n, loss = collections.Counter(), collections.Counter()
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            actions = [t["action"] for t in rec["turns"]]
            for i, t in enumerate(rec["turns"]):
                if not t.get("distilled"):
                    continue
                block = t.get("privileged") or ""
                m = HINT.search(block) or PAGE_HINT.search(block)
                if m or ENDED in block:
                    k = classify(t["action"], m.group(1).strip() if m else None, actions, actions[:i], t["invalid"])
                else:
                    k = "no hint"
                n[k] += 1
                loss[k] += sum(t.get("loss") or [])
        parts = ", ".join(f"{k} {n[k]} (loss {loss[k] / n[k]:.2f})" for k in sorted(n, key=lambda k: -n[k]))
        print(f"  {f.stem}: {sum(n.values())} distilled turns: {parts}")
