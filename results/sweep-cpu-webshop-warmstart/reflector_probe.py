"""What a reflector writes for HERO's per-turn reviews of logged training episodes, and how HERO classifies it.

Rebuilds the per-turn reflection prompts of a run's training episodes (credit/step_N.jsonl: actions and env
answers; the first observation from the env), asks the reflector model (greedy, bf16, as in training) and prints
each answer with its class under the current echo check, then the counts:

    python results/sweep-cpu-webshop-warmstart/reflector_probe.py RUN STEP[,STEP...] MODEL [--quiet]

MODEL is a hero-gym model spec: the warm start's folder (the self-reflector of step 1) or `smollm2` (untuned).
"""
import collections
import json
import sys
from pathlib import Path

import torch

from hero_gym.agents.diagnosis import echo_score, parse_turn_review
from hero_gym.agents.distill import load_prompt
from hero_gym.agents.hero import HEROConfig, HEROTrainer
from hero_gym.policies.hf import HFPolicy
from hero_gym.registry import make
from hero_gym.types import Trajectory, Turn

run, steps, model = Path(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")], sys.argv[3]
quiet = "--quiet" in sys.argv
ek = json.loads((Path(__file__).parent / "env_kwargs.json").read_text())
env = make("hero_gym/WebShop-v0", split="train", **ek)
mc = HEROConfig(reflect_mode="per_turn")
h = object.__new__(HEROTrainer)  # only its prompt building is used
h.method_config, h.reflect_turn_template = mc, load_prompt(mc.reflect_turn_template)
policy = HFPolicy(model, dtype=torch.bfloat16, batch_size=4)
counts = collections.Counter()
for step in steps:
    for line in (run / "credit" / f"step_{step:05d}.jsonl").read_text().splitlines():
        ep = json.loads(line)
        obs, _ = env.reset(seed=ep["seed"], options={"task_index": ep["task"]})
        traj = Trajectory(env_id=ep["env"], task_index=ep["task"], seed=ep["seed"], split="train",
                          initial_observation=obs, reward=ep["reward"], success=ep["success"],
                          termination_reason=ep["termination_reason"],
                          turns=[Turn(index=t["turn"], action=t["action"], observation=t["observation"])
                                 for t in ep["turns"]])
        requests = h.turn_reflection_requests(traj)
        for t, (req, gen) in enumerate(zip(requests, policy.generate(requests))):
            text = gen.text or ""
            d = parse_turn_review(text, t)
            score = echo_score(text, req.messages[-1]["content"], mc.echo_ngram, self_repeats=True)
            if d is not None and d.no_hint:
                kind = "no hint"
            elif score >= mc.echo_threshold:
                kind = "echo"
            elif d is None:
                kind = "unreadable"
            else:
                kind = "diagnosed" if d.is_actionable() else "no hint"
            same = " ".join(text.split()) == " ".join(traj.turns[t].action.split())
            counts[kind] += 1
            counts["answer = the turn's own action"] += same
            if not quiet:
                print(f"step {step} task {ep['task']} turn {t}: {kind} (echo {score:.2f}) "
                      f"action {traj.turns[t].action[:40]!r}\n    {' '.join(text.split())[:200]!r}")
print(dict(counts))
