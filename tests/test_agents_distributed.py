"""Data-parallel training through accelerate (agents/distributed.py): two Gloo processes on CPU train exactly like
one process that accumulates both ranks' rollout batches, and a rank without loss tokens does not hang the run."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from agents_fixtures import METHOD_CONFIGS, build, config, run_two_ranks
from hero_gym.agents import make_trainer
from hero_gym.agents.checkpoint import load_checkpoint
from hero_gym.agents.distributed import reduce_stats
from hero_gym.policies.models import tiny_model

HERE = Path(__file__).parent


def _replay(batches):
    """A rollout_fn that hands out pre-recorded batches in order (flat trajectory lists, as rollouts return)."""
    queue = list(batches)

    def rollout(env_id, policy, specs, **kw):
        trajs = queue.pop(0)
        assert len(trajs) == len(specs)
        return trajs
    return rollout


def _record_batches(tmp_path):
    """Four rollout batches of the tiny model on the toy env; the fourth has no observations, so SDPO finds no turn
    to distil in it (a batch with no loss tokens)."""
    tr = build(tmp_path / "rec", "sdpo")
    batches = [[t for g in tr.collect(step, micro) for t in g] for step, micro in ((0, 0), (0, 1), (1, 0), (1, 1))]
    for traj in batches[3]:
        for turn in traj.turns:
            turn.observation = ""
    return batches


_WORKER = """
import json, pickle, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from pathlib import Path
from agents_fixtures import METHOD_CONFIGS, config
from hero_gym.agents import make_trainer
from hero_gym.policies.models import tiny_model
from test_agents_distributed import _replay
batches = pickle.loads(Path({batches!r}).read_bytes())
cfg = config(Path({out!r}), "sdpo", **json.loads({cfg!r}))
rank = int(__import__("os").environ["RANK"])
model, tok = tiny_model()
tr = make_trainer(cfg, METHOD_CONFIGS["sdpo"](), model=model, tokenizer=tok,
                  rollout_fn=_replay([batches[rank], batches[2 + rank]]))
h = tr.train()
full = lambda t: t.full_tensor() if hasattr(t, "full_tensor") else t  # fsdp: gather the shards (every rank)
torch.save({{"params": {{n: full(p.detach()) for n, p in tr.model.named_parameters()}},
            "teacher": {{n: full(p.detach()) for n, p in tr.teacher_model.named_parameters()}},
            "losses": [r["loss"] for r in h], "tokens": [r["loss_tokens"] for r in h],
            "episodes": [r["episodes"] for r in h], "rank": tr.rank, "world": tr.world_size,
            "dummy_passes": tr.sharding.dummy_passes if tr.sharding is not None else 0}},
           Path({out!r}) / f"rank{{rank}}.pt")
# Resume from the checkpoint rank 0 wrote (every rank reads it, in a run directory of its own so the test still
# sees the step-2 checkpoint) and train a third step on the first batches again.
import shutil, torch.distributed as dist
dist.barrier()  # rank 0 has written the checkpoint
shutil.copytree(Path({out!r}) / "sdpo" / "checkpoint", Path({out!r}) / f"resume{{rank}}" / "sdpo" / "checkpoint")
cfg = config(Path({out!r}) / f"resume{{rank}}", "sdpo", **{{**json.loads({cfg!r}), "steps": 3}})
model, tok = tiny_model()
tr = make_trainer(cfg, METHOD_CONFIGS["sdpo"](), model=model, tokenizer=tok, rollout_fn=_replay([batches[rank]]))
assert tr.step == 2
tr.train()
torch.save({{n: full(p.detach()) for n, p in tr.model.named_parameters()}}, Path({out!r}) / f"resumed{{rank}}.pt")
"""

COMMON = {"steps": 2, "teacher": "ema", "lr": 1e-3, "export_model": False, "save_every": 0, "progress": False,
          "device": "cpu"}


def _launch(tmp_path, batches, strategy, timeout):
    out = tmp_path / "ddp"
    out.mkdir()
    (tmp_path / "batches.pkl").write_bytes(pickle.dumps(batches))
    script = tmp_path / "worker.py"
    cfg = json.dumps({**COMMON, "distributed": True, "distributed_strategy": strategy})
    script.write_text(_WORKER.format(tests=str(HERE), batches=str(tmp_path / "batches.pkl"), out=str(out), cfg=cfg))
    proc = run_two_ranks(script, timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, [{**torch.load(out / f"rank{r}.pt", weights_only=True),
                  "resumed": torch.load(out / f"resumed{r}.pt", weights_only=True)} for r in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "zero1", "fsdp"])
def test_two_gloo_ranks_train_like_one_process_on_both_batches_and_an_empty_rank_does_not_hang(tmp_path, strategy):
    batches = _record_batches(tmp_path)
    # Reference: one process, grad_accum=2 over the two ranks' batches of each step (A, B then C, empty).
    model, tok = tiny_model()
    ref = make_trainer(config(tmp_path, "sdpo", grad_accum=2, out_dir=str(tmp_path / "ref"), **COMMON),
                       METHOD_CONFIGS["sdpo"](), model=model, tokenizer=tok, rollout_fn=_replay(batches))
    hist = ref.train()
    assert hist[0]["loss_tokens"] > 0 and hist[1]["loss_tokens"] > 0
    # Hanging here (a rank that skips the gradient collective) fails the test by the timeout.
    out, ranks = _launch(tmp_path, batches, strategy, timeout=600)
    assert [(r["rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)]
    for r in ranks:
        # the logged loss is the step's loss over both ranks: the mean of their batch losses, as with grad_accum
        assert r["losses"] == pytest.approx([h["loss"] for h in hist], rel=1e-3)
        assert r["tokens"] == [h["loss_tokens"] for h in hist] and r["episodes"] == [h["episodes"] for h in hist]
        for name, p in ref.model.named_parameters():
            torch.testing.assert_close(r["params"][name], p.detach(), rtol=0, atol=2e-6, msg=name)
        for name, p in ref.teacher_model.named_parameters():
            torch.testing.assert_close(r["teacher"][name], p.detach(), rtol=0, atol=2e-6, msg=name)
    # the update moved the weights (a sync that zeroed gradients would also keep the ranks equal)
    start = dict(tiny_model()[0].named_parameters())
    moved = max(float((ranks[0]["params"][n] - start[n].detach()).abs().max()) for n in start)
    assert moved > 1e-4
    if strategy == "fsdp":
        # rank 1's step 2 has no loss tokens: it matched rank 0's loss passes with dummy ones (the lockstep path)
        assert ranks[1]["dummy_passes"] > 0
    # rank 0 alone wrote the log (one line per step) and a checkpoint whose optimiser state is the single
    # process's (zero1 gathers its shards first)
    assert len((out / "sdpo" / "train_log.jsonl").read_text().splitlines()) == 2
    state, meta = load_checkpoint(out / "sdpo" / "checkpoint")
    want = ref.optimizer.state_dict()["state"]
    assert meta["step"] == 2 and state["optimizer"]["state"].keys() == want.keys()
    for k in want:
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state["optimizer"]["state"][k][name], want[k][name], rtol=1e-4, atol=1e-9)
    # the checkpoint holds whole tensors: a single process resumes it with the ranks' weights and teacher
    single, tok = tiny_model()
    single = make_trainer(config(tmp_path, "sdpo", grad_accum=2, out_dir=str(out / "sdpo"), **COMMON),
                          METHOD_CONFIGS["sdpo"](), model=single, tokenizer=tok, rollout_fn=_replay([]))
    assert single.step == 2
    for name, p in single.model.named_parameters():
        torch.testing.assert_close(p.detach(), ranks[0]["params"][name], rtol=0, atol=0, msg=name)
    for name, p in single.teacher_model.named_parameters():
        torch.testing.assert_close(p.detach(), ranks[0]["teacher"][name], rtol=0, atol=0, msg=name)
    # resumed from that checkpoint, a third step on the first batches matches the single process's third step
    model, tok = tiny_model()
    ref = make_trainer(config(tmp_path, "sdpo", grad_accum=2, out_dir=str(tmp_path / "ref"), **{**COMMON, "steps": 3}),
                       METHOD_CONFIGS["sdpo"](), model=model, tokenizer=tok, rollout_fn=_replay(batches[:2]))
    assert ref.step == 2
    ref.train()
    for r in ranks:
        for name, p in ref.model.named_parameters():
            torch.testing.assert_close(r["resumed"][name], p.detach(), rtol=0, atol=5e-6, msg=name)


def test_reduce_stats_averages_losses_sums_counts_and_keeps_rank_invariant_values():
    per_rank = [{"loss": 1.0, "loss_tokens": 10, "grad_norm": 3.0, "clip_frac": 0.5},
                {"loss": 0.0, "loss_tokens": 0, "grad_norm": 3.0}]
    out = reduce_stats(per_rank, mean_keys=("loss", "clip_frac"), same_keys=("grad_norm",))
    assert out == {"loss": 0.5, "loss_tokens": 10, "grad_norm": 3.0, "clip_frac": 0.5}


def test_distributed_config_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="launcher"):
        build(tmp_path, "sdpo", cfg_kw={"distributed": True, "device": "cpu"})
    with pytest.raises(ValueError, match="distributed_strategy"):
        config(tmp_path, "sdpo", distributed=True, distributed_strategy="zero3").validate()
    with pytest.raises(ValueError, match="launcher"):
        build(tmp_path, "sdpo", cfg_kw={"distributed": True, "distributed_strategy": "fsdp", "device": "cpu"})
    # fsdp shards the weights: what needs the whole model at once, or the student between a forward and its
    # backward, is refused up front (it would otherwise hang the ranks' collectives)
    with pytest.raises(ValueError, match="fsdp.*lora"):
        config(tmp_path, "sdpo", distributed=True, distributed_strategy="fsdp", lora=True).validate()
    with pytest.raises(ValueError, match="fsdp.*teacher='current'"):
        config(tmp_path, "sdpo", distributed=True, distributed_strategy="fsdp", teacher="current").validate()
    config(tmp_path, "sdpo", distributed=True, distributed_strategy="fsdp").validate()
