"""`hero-gym plan`: shapes, the memory arithmetic against measured tensors and published figures, refusal."""

from __future__ import annotations

import json

import pytest

from hero_gym.agents.model_shapes import ModelShape, load_shape
from hero_gym.agents.plan import GIB, PlanConfig, _fixes, plan, state_bytes, suggest
from hero_gym.benchmarks.plan_check import check
from hero_gym.cli import main


def test_tiny_param_count_is_exact():
    from hero_gym.policies.models import tiny_model

    m = tiny_model()[0]
    assert ModelShape.from_config(m.config.to_dict()).n_params() == sum(p.numel() for p in m.parameters())


def test_shipped_shapes_match_the_model_cards():
    # Qwen3-4B-Instruct-2507 card: 4.0B params, 3.6B non-embedding; 30B-A3B card: 30.5B total, 3.3B active,
    # 29.9B non-embedding.
    s4 = load_shape("Qwen3-4B-Instruct-2507")
    assert round(s4.n_params() / 1e9, 1) == 4.0 and round(s4.n_non_embedding() / 1e9, 1) == 3.6
    s30 = load_shape("Qwen/Qwen3-30B-A3B-Instruct-2507")
    assert round(s30.n_params() / 1e9, 1) == 30.5 and 3.3 <= s30.n_params(active=True) / 1e9 < 3.4
    assert round(s30.n_non_embedding() / 1e9, 1) == 29.9


def test_zero_paper_figures():
    # ZeRO (Rajbhandari et al. 2020), Figure 1: a 7.5B model with mixed-precision Adam takes 16 bytes/param =
    # 120 GB per GPU unsharded, 1.9 GB with stage 3 over 64 GPUs (weights + grads + optimiser, no teacher).
    # no layers and no vocabulary: n_params is the final norm's hidden_size weights
    shape = ModelShape("7.5B", vocab_size=0, hidden_size=7_500_000_000, intermediate_size=0, num_layers=0,
                       num_heads=1, num_kv_heads=1, head_dim=1, tie_embeddings=True)
    c = PlanConfig(method="grpo", precision="bf16-mixed")
    total = sum(state_bytes(shape, c).values())
    assert total == 16 * 7.5e9  # 120 GB
    assert total / 64 / 1e9 == pytest.approx(1.875)


def test_4b_full_finetune_with_fp32_ema_teacher_is_about_80gb():
    # 16 bytes/param (ZeRO) + a 4-byte fp32 teacher = 20 bytes x 4.02B: the "about 80 GB"
    s = load_shape("Qwen/Qwen3-4B-Instruct-2507")
    got = sum(state_bytes(s, PlanConfig()).values()) / 1e9
    assert 79 < got < 82
    bf16_teacher = sum(state_bytes(s, PlanConfig(teacher="ema-bf16")).values()) / 1e9
    assert bf16_teacher == pytest.approx(got - 2 * s.n_params() / 1e9)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True])
def test_planner_matches_measured_tensors_on_the_tiny_model(lora):
    if lora:
        pytest.importorskip("peft")
    rows = {item: (got, want) for item, got, want in check("tiny", tokens=256, lora=lora)}
    got, want = rows["weights+grads+optimizer+teacher"]
    assert abs(want / got - 1) < 0.15
    got, want = rows["activations"]
    assert abs(want / got - 1) < 0.15


def test_sharding_divides_state_and_vllm_takes_its_share():
    one = plan(PlanConfig(gpus=1, shard=False))
    eight = plan(PlanConfig(gpus=8))
    assert eight.train["optimizer (AdamW)"] == pytest.approx(one.train["optimizer (AdamW)"] / 8)
    assert one.train_budget_gib == pytest.approx(80e9 / GIB * 0.7)
    separate = plan(PlanConfig(gpus=8, vllm_gpus=2))
    assert separate.train_budget_gib == pytest.approx(80e9 / GIB)
    assert separate.train["optimizer (AdamW)"] == pytest.approx(one.train["optimizer (AdamW)"] / 6)
    # KV cache: 36 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 144 KiB per token
    assert load_shape("Qwen3-4B-Instruct-2507").kv_bytes_per_token() == 147456
    assert one.engine["vLLM KV cache"] == pytest.approx(4 * 32768 * 147456 / GIB)


def test_zero1_shards_only_the_optimiser_as_hero_gym_train_does():
    whole = plan(PlanConfig(gpus=8, shard=False))
    z = plan(PlanConfig(gpus=8, shard=False, zero1=True))
    assert z.train["optimizer (AdamW)"] == pytest.approx(whole.train["optimizer (AdamW)"] / 8)
    for k in ("weights", "gradients", "teacher", "activations"):
        assert z.train[k] == whole.train[k]
    assert plan(PlanConfig(gpus=8, zero1=True)).train == plan(PlanConfig(gpus=8)).train  # shard already covers it
    assert "--zero1" in [flag for flag, _ in _fixes(PlanConfig(gpus=8, shard=False))]


def test_a_config_that_does_not_fit_is_refused_with_one_that_does(capsys):
    c = PlanConfig(gpus=1)
    assert not plan(c).fits()
    flags, p = suggest(c)
    assert p.fits() and flags
    assert main(["plan", "--gpus", "1"]) == 1
    out = capsys.readouterr().out
    assert "does not fit" in out and f"nearest config that fits: add {flags}" in out
    assert main(["plan", "--gpus", "8", "--grad-checkpointing", "--max-model-len", "16384"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("fits")


def test_plan_reads_a_local_config_json(tmp_path, capsys):
    from hero_gym.policies.models import tiny_model

    (tmp_path / "config.json").write_text(json.dumps(tiny_model()[0].config.to_dict()))
    argv = ["plan", "--model", str(tmp_path), "--rollout", "hf", "--gpu-mem", "1", "--train-seq-len", "512"]
    assert main([*argv, "--runtime-reserve-gb", "0"]) == 0
    out = capsys.readouterr().out
    assert f"model {tmp_path / 'config.json'}: 0.00B params" in out and out.rstrip().endswith("fits")


@pytest.mark.parametrize("argv, msg", [
    (["--model", "nope/none"], "unknown model"),
    (["--gpus", "0"], "gpus must be >= 1"),
    (["--teacher", "bf16"], "teacher must be"),
    (["--gpus", "2", "--vllm-gpus", "2"], "vllm_gpus must leave"),
    (["--gpus", "3", "--tensor-parallel-size", "2"], "does not divide"),
    (["--gpus", "x"], "invalid int value"),
])
def test_bad_input_is_one_line(argv, msg, capsys):
    assert main(["plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and "\n" not in err


def test_vllm_settings_from_the_run_config_reach_the_engine(monkeypatch):
    import sys
    import types

    from hero_gym.agents.base import TrainConfig, vllm_engine_kwargs
    from hero_gym.policies.vllm import VLLMPolicy

    seen = {}

    class FakeLLM:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def get_tokenizer(self):
            return None

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM))
    cfg = TrainConfig(vllm_gpu_memory_utilization=0.3, vllm_tensor_parallel_size=2, max_context_tokens=1000,
                      max_new_tokens=24)
    VLLMPolicy("m", **vllm_engine_kwargs(cfg, "bf16-mixed"))
    assert seen == dict(model="m", tensor_parallel_size=2, gpu_memory_utilization=0.3, max_model_len=1024,
                        dtype="bfloat16")
    VLLMPolicy("m", **vllm_engine_kwargs(TrainConfig(vllm_max_model_len=4096), "fp32"))
    assert seen["max_model_len"] == 4096 and seen["dtype"] == "float32"
