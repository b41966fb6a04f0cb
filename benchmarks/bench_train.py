"""Training-step cost per method at equal env interactions: wall time (rollout / loss+update split) and peak memory.

    python -m hero_gym.benchmarks.bench_train --model tiny --steps 3 --out results/bench_train.md
    python -m hero_gym.benchmarks.bench_train --model smollm2 --steps 1 --turn-budget 3 --max-new-tokens 48

Every method runs the same number of episodes per step (tasks_per_step x G) under the same turn budget in
hero_gym/WebShop-v0, each method in its own process so its peak resident memory (ru_maxrss; on CUDA also the peak
allocated GPU memory) is its own. HERO's reflector is the model itself (as in training), so its reflection
generation is included in its time. By default every method is made to train on every agent token (GRPO rewards
tie-broken, Full-Demo falls back to the env's oracle demo, HERO's reflection gets a diagnosis of every turn
appended in trajectory mode; per-turn free-text reviews need no help) so the table compares the full cost of each loss; --natural turns that off. The first step of each
method is reported separately (it includes loading the catalogue and warming caches); the table shows the mean of
the later steps (or the only step with --steps 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

METHODS = ("grpo", "sdpo", "full-demo", "hero")


class _FilledReflector:
    """The model reflects as in training (its cost is measured); a tiny/untrained model rarely writes parsable
    diagnoses, so an actionable diagnosis of every turn is appended to make every turn take the distillation path
    (HERO distils only actionable diagnoses; the echo check is off in this mode)."""

    name = "filled-reflector"

    def __init__(self, policy):
        self.policy = policy

    def generate(self, requests):
        import re

        gens = self.policy.generate(requests)
        for req, gen in zip(requests, gens):
            n = int(re.search(r"from 1 to (\d+)", req.messages[-1]["content"]).group(1))
            gen.text = (gen.text or "") + "\n" + "\n".join(
                json.dumps({"turn": t, "necessary": True, "valid": False, "cause": "bench filler"}) for t in range(1, n + 1))
            gen.error = None
        return gens


def _forced_signal(method: str, kw: dict):
    """Method settings that make every method train on every agent token (the worst-case cost per step)."""
    from hero_gym.agents import method_config_class

    if method == "grpo":
        from hero_gym.rollout import run_episodes

        def tie_broken(env_id, policy, specs, **k):  # distinct rewards in every group: every advantage != 0
            trajs = run_episodes(env_id, policy, specs, **k)
            for i, t in enumerate(trajs):
                t.reward += 1e-3 * (i % 7 + 1)
            return trajs
        kw["rollout_fn"] = tie_broken
        return method_config_class(method)(), kw
    if method == "full-demo":
        return method_config_class(method)(demo_source="sibling_then_oracle"), kw
    return None, kw


def _one(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from hero_gym.agents import TrainConfig, make_trainer
    from hero_gym.policies.models import load_model

    t0 = time.perf_counter()
    model, tok = load_model(args.model)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(env_id=args.env, split="train", tasks=list(range(args.tasks)), model=args.model,
                          method=args.one, group_size=args.group_size, tasks_per_step=args.tasks_per_step,
                          steps=args.steps, turn_budget=args.turn_budget, max_new_tokens=args.max_new_tokens,
                          micro_batch_size=args.micro_batch_size, out_dir=out, save_every=0, lr=1e-5, seed=0,
                          precision=args.precision, export_model=False)
        mc, kw = None, {}
        if args.force_signal:
            mc, kw = _forced_signal(args.one, kw)
        if args.one == "hero":
            from hero_gym.agents.hero import HEROConfig
            mc = HEROConfig(reflect_mode=args.reflect_mode, **({"echo_threshold": None} if args.force_signal else {}))
        trainer = make_trainer(cfg, mc, model=model, tokenizer=tok, **kw)
        if args.force_signal and args.one == "hero" and args.reflect_mode == "trajectory":
            trainer._reflector = _FilledReflector(trainer.policy)
        steps = []
        for _ in range(args.steps):
            rec = trainer.train_step()
            steps.append(rec)
    rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    later = steps[1:] or steps
    mean = lambda key: sum(s[key] for s in later) / len(later)  # noqa: E731
    return {
        "method": args.one, "load_s": load_s, "first_step_s": steps[0]["step_s"], "step_s": mean("step_s"),
        "cpu_s": mean("cpu_s"),
        "rollout_s": mean("rollout_s"), "update_s": mean("step_s") - mean("rollout_s"),
        "env_turns": mean("env_turns"), "loss_tokens": mean("loss_tokens"), "peak_rss_mb": rusage,
        "peak_gpu_gb": max((s.get("peak_mem_gb", 0.0) for s in steps), default=0.0),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--env", default="hero_gym/WebShop-v0")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--tasks", type=int, default=8, help="training task pool (the first N train tasks)")
    p.add_argument("--tasks-per-step", type=int, default=2)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--turn-budget", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--micro-batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16-mixed", "bf16"),
                   help="TrainConfig.precision (auto: fp32 on CPU, bf16-mixed on GPU)")
    p.add_argument("--natural", dest="force_signal", action="store_false",
                   help="do not force a training signal (GRPO then skips zero-advantage batches, Full-Demo/HERO "
                        "skip trajectories without a demo/diagnosis, so their cost depends on the model's luck)")
    p.add_argument("--reflect-mode", default="trajectory", choices=("trajectory", "per_turn"),
                   help="HERO's reflection mode (per_turn reviews give free-text diagnoses, no filling needed)")
    p.add_argument("--out", help="write a Markdown table here")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one method in this process, print JSON
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(_one(args)))
        return 0
    rows = []
    for m in args.methods.split(","):
        cmd = [sys.executable, "-m", "hero_gym.benchmarks.bench_train", *(argv if argv is not None else sys.argv[1:]),
               "--one", m]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"benchmark of {m} failed (exit {proc.returncode})")
        rows.append(json.loads(line[7:]))
        print(f"{m}: {rows[-1]['step_s']:.2f} s/step ({rows[-1]['cpu_s']:.2f} CPU s)", flush=True)
    base = rows[0]["step_s"]
    head = ("| method | s/step | CPU s/step | rollout s | loss+update s | vs " + rows[0]["method"] +
            " | env turns/step | loss tokens/step | first step s | peak RSS MB | peak GPU GB |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['step_s']:.2f} | {r['cpu_s']:.2f} | {r['rollout_s']:.2f} | {r['update_s']:.2f} | "
                     f"{r['step_s'] / base:.2f}x | {r['env_turns']:.0f} | {r['loss_tokens']:.0f} | "
                     f"{r['first_step_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['peak_gpu_gb']:.2f} |")
    cmd = "python -m hero_gym.benchmarks.bench_train " + " ".join(argv if argv is not None else sys.argv[1:])
    setting = (f"{'forced training signal (see module docstring)' if args.force_signal else 'natural signal'}, "
               f"model {args.model}, env {args.env}, {args.tasks_per_step} tasks x G={args.group_size} per step, "
               f"turn budget {args.turn_budget}, max_new_tokens {args.max_new_tokens}, {args.steps} steps "
               f"({'table: mean of steps 2..' + str(args.steps) if args.steps > 1 else 'one step, loading included'}), precision {args.precision}, torch threads {args.threads}, "
               f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    text = "\n".join([f"Command: `{cmd}`", "", setting, "", *lines, ""])
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write("# Training step cost per method (equal env interactions)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
