"""The vLLM rollout engine as the trainer drives it, against a stand-in `vllm` module that records every call
(vLLM itself needs a CUDA GPU and is not installed here): engine settings from the run config, placement, weight
sync after each update (full, merged LoRA, LoRA adapter), and the sampler's log-probs reaching GRPO's truncated
importance-sampling correction."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch

from hero_gym.agents.base import TrainConfig
from hero_gym.agents.grpo import GRPOConfig, GRPOTrainer
from hero_gym.policies.models import tiny_model
from hero_gym.rollout import run_episodes

# The fake engine writes one of two actions, by the parity of the request's seed: the two episodes of a group
# differ, so their opposite advantages do not cancel in the policy gradient.
ACTIONS = ("search[red shoes]", "click[back to search]")


class Engine:
    """What the fake vLLM saw: LLM(...) kwargs, the CUDA_VISIBLE_DEVICES it started under, SamplingParams,
    LoRA requests per generate call, load_weights calls."""

    def __init__(self, tokenizer, sampler_logprob: float):
        self.tokenizer, self.sampler_logprob = tokenizer, sampler_logprob
        self.llm_kwargs, self.devices_at_start = None, None
        self.sampling, self.lora_requests, self.loads, self.prefix_resets = [], [], [], 0


def fake_vllm(engine: Engine) -> dict[str, types.ModuleType]:
    class LLM:
        def __init__(self, **kwargs):
            engine.llm_kwargs = kwargs
            engine.devices_at_start = os.environ.get("CUDA_VISIBLE_DEVICES")
            self.model = types.SimpleNamespace(load_weights=lambda items: engine.loads.append(
                [(n, t.detach().clone()) for n, t in items]))

        def get_tokenizer(self):
            return engine.tokenizer

        def generate(self, prompts, params, use_tqdm=True, lora_request=None):
            engine.lora_requests.append(lora_request)
            out = []
            for p in params:
                text = ACTIONS[(p.kwargs.get("seed") or 0) % 2]
                ids = engine.tokenizer.encode(text, add_special_tokens=False) + [engine.tokenizer.eos_token_id]
                lp = [{t: types.SimpleNamespace(logprob=engine.sampler_logprob)} for t in ids]
                out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids, text=text, logprobs=lp,
                                                                                finish_reason="stop")]))
            return out

        def apply_model(self, fn):
            return [fn(self.model)]

        def reset_prefix_cache(self):
            engine.prefix_resets += 1

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            engine.sampling.append(kwargs)

    class LoRARequest:
        def __init__(self, lora_name, lora_int_id, lora_path):
            self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora, request = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    vllm.lora, lora.request = lora, request
    return {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}


@pytest.fixture
def engine(monkeypatch):
    model, tok = tiny_model()
    eng = Engine(tok, sampler_logprob=-30.0)
    for name, mod in fake_vllm(eng).items():
        monkeypatch.setitem(sys.modules, name, mod)
    eng.model = model
    return eng


def contrast_rollout(*args, **kwargs):
    """The real rollout engine, then rewards 1, 0, 1, 0 ... so every group has a reward contrast (the fake engine
    always writes the same action, which never succeeds)."""
    trajs = run_episodes(*args, **kwargs)
    for i, t in enumerate(trajs):
        t.reward, t.success = float(i % 2 == 0), i % 2 == 0
    return trajs


def make_trainer(engine, tmp_path, name="run", mc=None, **cfg):
    base = dict(env_id="hero_gym/WebShop-v0", model="tiny", method="grpo", turn_budget=1, group_size=2,
                tasks_per_step=2, steps=1, lr=1e-3, device="cpu", precision="fp32", rollout_backend="vllm",
                max_context_tokens=1024, max_new_tokens=16, out_dir=str(tmp_path / name), progress=False,
                save_every=0, export_model=False, credit_rollouts_per_step=0)
    base.update(cfg)
    model, tok = tiny_model()
    # pi_old recomputed by the trainer: the fake sampler's log-probs are far off, and as pi_old they would clip
    # every token (no gradient), which is what tis_cap is for (last test)
    mc = mc or GRPOConfig(old_logprobs="recompute")
    return GRPOTrainer(TrainConfig(**base), mc, model=model, tokenizer=tok, rollout_fn=contrast_rollout)


def test_engine_settings_and_placement_come_from_the_run_config(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    t = make_trainer(engine, tmp_path, vllm_gpu_memory_utilization=0.25, vllm_max_model_len=2048,
                     vllm_tensor_parallel_size=2, vllm_devices="1,2")
    t.policy  # builds the engine
    assert engine.llm_kwargs == dict(model="tiny", tensor_parallel_size=2, gpu_memory_utilization=0.25,
                                     max_model_len=2048, dtype="float32")
    assert engine.devices_at_start == "1,2" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"  # restored for the trainer
    # colocated (no vllm_devices): the engine starts on the trainer's devices
    t2 = make_trainer(engine, tmp_path, name="colocated")
    t2.policy
    assert engine.devices_at_start == "0" and engine.llm_kwargs["max_model_len"] == 1024 + 16


def test_full_weights_are_pushed_at_start_and_after_every_update(engine, tmp_path):
    t = make_trainer(engine, tmp_path)
    t.train_step()
    assert len(engine.loads) == 2  # at engine start, then after the step (one chunk each: a tiny model)
    first, after = dict(engine.loads[0]), dict(engine.loads[1])
    state = t.model.state_dict()
    assert set(after) == set(state)
    assert all(torch.equal(after[k], state[k]) for k in state)  # the engine holds the updated weights
    assert any(not torch.equal(first[k], after[k]) for k in state)  # and they did change
    assert engine.prefix_resets == 2


def test_lora_with_vllm_pushes_merged_weights(engine, tmp_path):
    pytest.importorskip("peft")
    t = make_trainer(engine, tmp_path, lora=True, lora_r=4, lr=0.05)
    t.train_step()
    assert "enable_lora" not in engine.llm_kwargs  # merged: the engine runs the plain model
    pushed = dict(engine.loads[-1])
    import copy

    want = copy.deepcopy(t.model).merge_and_unload().state_dict()
    assert set(pushed) == set(want)  # Hugging Face names, no base_layer / lora_ entries
    assert all(torch.allclose(pushed[k], want[k], atol=1e-6) for k in want)
    # the adapters were trained, so merged weights differ from the frozen base, which the push left untouched
    base = t.model.get_base_model().state_dict()
    q = next(k for k in want if k.endswith("q_proj.weight"))
    assert not torch.allclose(pushed[q], base[q.replace("q_proj.", "q_proj.base_layer.")])
    assert torch.equal(base[q.replace("q_proj.", "q_proj.base_layer.")], tiny_model()[0].state_dict()[q])


def test_lora_with_vllm_adapters(engine, tmp_path):
    pytest.importorskip("peft")
    t = make_trainer(engine, tmp_path, lora=True, lora_r=4, vllm_lora_sync="adapter", steps=2)
    t.train_step()
    assert engine.llm_kwargs["enable_lora"] is True and engine.llm_kwargs["max_lora_rank"] == 4
    assert engine.loads == []  # no full-weight traffic
    t.train_step()
    t.collect(t.step, 0)
    reqs = [r for r in engine.lora_requests if r is not None]
    ids = [r.lora_int_id for r in reqs]
    assert ids == sorted(ids) and len(set(ids)) == 3  # a new adapter id per update (vLLM caches by id)
    last = Path(reqs[-1].lora_path)
    assert (last / "adapter_config.json").is_file() and last.name == "step_00002"
    assert len(list(last.parent.glob("step_*"))) <= 2  # old adapters are cleaned up


def test_sampler_logprobs_are_recorded_and_tis_cap_clips_the_ratio(engine, tmp_path):
    # The fake sampler gives every token log-prob -30: far below the trainer's (~ -7 for a 1k vocabulary), so
    # pi_trainer / pi_sampler is huge and truncated at tis_cap on every token.
    t = make_trainer(engine, tmp_path, name="cap2", mc=GRPOConfig(tis_cap=2.0))
    groups = t.collect(0, 0)
    turns = [turn for g in groups for tr in g for turn in tr.turns]
    assert turns and all(turn.action_logprobs == [-30.0] * len(turn.action_token_ids) for turn in turns)
    assert all(s["logprobs"] == 0 for s in engine.sampling)  # vLLM asked for the sampled token's log-prob
    cap2 = make_trainer(engine, tmp_path, name="cap2b", mc=GRPOConfig(tis_cap=2.0)).train_step()
    cap4 = make_trainer(engine, tmp_path, name="cap4", mc=GRPOConfig(tis_cap=4.0)).train_step()
    assert cap2["tis_truncated_frac"] == 1.0 and cap4["tis_truncated_frac"] == 1.0
    # ratio 1 (one update per batch), weight = the cap on every token: the loss scales with the cap
    assert cap4["loss"] == pytest.approx(2 * cap2["loss"], rel=1e-5) and cap2["loss"] != 0
    # a sampler more confident than the trainer (log-prob 0): weights p_trainer < 1, nothing truncated
    engine.sampler_logprob = 0.0
    low = make_trainer(engine, tmp_path, name="conf", mc=GRPOConfig(tis_cap=2.0)).train_step()
    assert low["tis_truncated_frac"] == 0.0 and abs(low["loss"]) < abs(cap2["loss"]) / 2
