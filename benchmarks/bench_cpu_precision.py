"""bf16 against fp32 on this CPU: is bf16 a speed-up here or an emulated slow path?

    python -m hero_gym.benchmarks.bench_cpu_precision --threads 1 --out results/bench_cpu_precision.md

On a CPU with native bf16 (x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``) a bf16 copy of the weights decodes
faster than fp32 (``results/bench_train.md``: 2.3x on the machine of sessions 3-6). Without it PyTorch emulates
bf16 matmuls. This measures the three things a run does with one model (SmolLM2-135M-Instruct by default), each in
fp32 and in the bf16 settings the trainers offer, on the same inputs:

- prefill: a forward over ``--batch`` x ``--prompt`` tokens, no grad (fp32 weights; bf16 weights,
  ``eval_precision=bf16``; fp32 weights under bf16 autocast, ``precision=bf16-mixed``);
- decode: ``--decode`` single-token steps with a KV cache after a short prefill (same three);
- train: forward + backward over 1 x ``--train-tokens`` tokens (fp32; bf16 autocast).

Each case is warmed up once, then the cases run in turn (fp32, bf16, ..., fp32, bf16, ...) ``--repeats`` times and
the median is reported with the ratio to fp32. :func:`hero_gym.policies.models.cpu_has_native_bf16` says which
answer the loaders act on: without native bf16 they load a bf16 folder in fp32 and trainers warn about bf16.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time

import torch


def _cases(model, batch: int, prompt: int, decode: int, train_tokens: int):
    """name -> a callable running that case once; the models are built once, outside the timings."""
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, prompt), generator=gen)
    short = torch.randint(0, vocab, (batch, 32), generator=gen)
    train_ids = torch.randint(0, vocab, (1, train_tokens), generator=gen)
    fp32 = model.float().eval()
    bf16 = type(model)(model.config).to(torch.bfloat16).eval()
    bf16.load_state_dict({k: v.to(torch.bfloat16) for k, v in fp32.state_dict().items()})
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731

    def prefill(m, ctx):
        with torch.no_grad(), ctx():
            m(ids)

    def decode_steps(m, ctx):
        with torch.no_grad(), ctx():
            out = m(short, use_cache=True)
            cache, nxt = out.past_key_values, short[:, -1:]
            for _ in range(decode):
                cache = m(nxt, past_key_values=cache, use_cache=True).past_key_values

    def train(ctx):
        fp32.train()
        with ctx():
            loss = fp32(train_ids, labels=train_ids).loss
        loss.backward()
        fp32.zero_grad(set_to_none=True)
        fp32.eval()

    none = contextlib.nullcontext
    return {
        ("prefill", "fp32"): lambda: prefill(fp32, none),
        ("prefill", "bf16 weights"): lambda: prefill(bf16, none),
        ("prefill", "bf16 autocast"): lambda: prefill(fp32, autocast),
        ("decode", "fp32"): lambda: decode_steps(fp32, none),
        ("decode", "bf16 weights"): lambda: decode_steps(bf16, none),
        ("decode", "bf16 autocast"): lambda: decode_steps(fp32, autocast),
        ("train", "fp32"): lambda: train(none),
        ("train", "bf16 autocast"): lambda: train(autocast),
    }


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2", help="model spec for hero_gym.policies.models.load_model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompt", type=int, default=256, help="prefill tokens per row")
    p.add_argument("--decode", type=int, default=16, help="decode steps")
    p.add_argument("--train-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="write the markdown report here")
    a = p.parse_args(argv)
    if min(a.threads, a.batch, a.prompt, a.decode, a.train_tokens, a.repeats) < 1:
        p.error("--threads, --batch, --prompt, --decode, --train-tokens and --repeats must be >= 1")
    from hero_gym.policies.models import cpu_has_native_bf16, load_model

    torch.set_num_threads(a.threads)
    model, _ = load_model(a.model, dtype=torch.float32)
    cases = _cases(model, a.batch, a.prompt, a.decode, a.train_tokens)
    times = {k: [] for k in cases}
    for run in cases.values():  # warm-up
        run()
    for _ in range(a.repeats):
        for k, run in cases.items():
            t = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [f"# bf16 against fp32 on this CPU ({a.model})", "",
             f"`python -m hero_gym.benchmarks.bench_cpu_precision --model {a.model} --threads {a.threads} "
             f"--batch {a.batch} --prompt {a.prompt} --decode {a.decode} --train-tokens {a.train_tokens} "
             f"--repeats {a.repeats}`", "",
             f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, capability "
             f"{torch.backends.cpu.get_cpu_capability()}, native bf16 (`cpu_has_native_bf16`): "
             f"**{cpu_has_native_bf16()}**; {a.threads} thread(s); median of {a.repeats} after a warm-up.", "",
             "| work | setting | seconds (median) | range | time / fp32 |", "|---|---|---|---|---|"]
    for (work, setting), t in med.items():
        ratio = t / med[(work, "fp32")]
        lines.append(f"| {work} | {setting} | {t:.3f} | {min(times[(work, setting)]):.3f}-"
                     f"{max(times[(work, setting)]):.3f} | {ratio:.2f}x |")
    report = "\n".join(lines) + "\n"
    print(report)
    if a.out:
        with open(a.out, "w") as f:
            f.write(report)
    return report


if __name__ == "__main__":
    main()
