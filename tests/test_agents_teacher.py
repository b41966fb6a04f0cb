"""Teacher weights of the distillation methods: the bf16 EMA teacher (agents/ema.py) and teacher = current model."""

from __future__ import annotations

import torch

from agents_fixtures import build
from hero_gym.agents.ema import ema_update, rounding_generator, stochastic_round_to_bf16


def _pair(values: torch.Tensor, delta: float):
    """A bf16 teacher holding `values` and an fp32 student `delta` away from it, as one-parameter modules."""
    teacher = torch.nn.Linear(values.numel(), 1, bias=False).to(torch.bfloat16)
    student = torch.nn.Linear(values.numel(), 1, bias=False)
    with torch.no_grad():
        teacher.weight.copy_(values.view(1, -1).to(torch.bfloat16))
        student.weight.copy_(teacher.weight.float() + delta)
    return teacher, student


def test_bf16_ema_moves_the_teacher_by_the_rate_even_when_each_step_is_below_bf16_resolution():
    rate, delta = 0.05, 0.01  # rate x delta = 5e-4, a fifteenth of bf16's spacing (2**-7) at 1.0
    teacher, student = _pair(torch.full((200_000,), 1.0), delta)
    before, student_before = teacher.weight.detach().float().clone(), student.weight.detach().clone()
    ema_update(teacher, student, rate, rounding_generator(seed=0, step=0))
    after = teacher.weight.detach().float()
    assert teacher.weight.dtype == torch.bfloat16
    # every value is one of the two bf16 neighbours of the exact update: 1.0 or 1.0 + 2**-7
    assert set(after.unique().tolist()) <= {1.0, 1.0 + 2**-7}
    # unbiased: on average the teacher moved exactly rate x delta (round-to-nearest would not move it at all)
    assert abs(float((after - before).mean()) - rate * delta) < 0.05 * rate * delta
    # asymmetric: the student is never pulled towards the teacher
    assert torch.equal(student.weight.detach(), student_before)


def test_bf16_ema_follows_a_large_step_to_within_bf16_resolution():
    torch.manual_seed(0)
    values = torch.randn(10_000)
    teacher, student = _pair(values, 0.0)
    with torch.no_grad():
        student.weight.add_(torch.randn_like(student.weight))
    expected = 0.8 * teacher.weight.float() + 0.2 * student.weight
    ema_update(teacher, student, 0.2, rounding_generator(0, 1))
    spacing = expected.abs() * 2**-7 + 1e-30  # one bf16 step at each value (upper bound)
    assert bool(((teacher.weight.float() - expected).abs() <= spacing).all())


def test_stochastic_rounding_is_reproducible_and_keeps_special_values():
    x = torch.tensor([1.0 + 2**-9, float("inf"), float("-inf"), 0.0, -3.0])
    a = stochastic_round_to_bf16(x, rounding_generator(3, 5))
    b = stochastic_round_to_bf16(x, rounding_generator(3, 5))
    assert torch.equal(a, b) and a.dtype == torch.bfloat16
    assert a[1] == float("inf") and a[2] == float("-inf") and a[3] == 0 and a[4] == -3.0
    assert float(a[0]) in (1.0, 1.0 + 2**-7)
    before = torch.get_rng_state()
    stochastic_round_to_bf16(x, rounding_generator(3, 5))
    assert torch.equal(before, torch.get_rng_state())  # the training RNG stream is untouched


def _teacher_bytes(tr) -> int:
    return sum(p.numel() * p.element_size() for p in tr.teacher_model.parameters())


def test_ema_bf16_teacher_is_bf16_half_the_memory_follows_the_student_and_resumes(tmp_path):
    rate = 0.25
    fp32 = build(tmp_path / "a", "sdpo", cfg_kw={"teacher": "ema", "steps": 1, "export_model": False})
    tr = build(tmp_path / "b", "sdpo", cfg_kw={"teacher": "ema-bf16", "teacher_update_rate": rate, "steps": 1,
                                               "export_model": False})
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in tr.teacher_model.parameters())
    assert all(p.dtype == torch.float32 for p in tr.model.parameters())  # the student keeps fp32 masters
    assert _teacher_bytes(tr) * 2 == _teacher_bytes(fp32)
    t0 = [p.detach().float().clone() for p in tr.teacher_model.parameters()]
    tr.train()
    moved = 0
    for before, t, s in zip(t0, tr.teacher_model.parameters(), tr.model.parameters()):
        expected = (1 - rate) * before + rate * s.detach()
        assert bool(((t.float() - expected).abs() <= expected.abs() * 2**-7 + 1e-6).all())
        moved += int((t.float() != before).sum())
    assert moved > 0
    resumed = build(tmp_path / "b", "sdpo", cfg_kw={"teacher": "ema-bf16", "teacher_update_rate": rate, "steps": 1,
                                                    "export_model": False})
    assert resumed.step == 1
    for a, b in zip(tr.teacher_model.parameters(), resumed.teacher_model.parameters()):
        assert b.dtype == torch.bfloat16 and torch.equal(a, b)


def test_current_teacher_is_the_live_model_and_costs_no_copy(tmp_path):
    tr = build(tmp_path, "sdpo", cfg_kw={"teacher": "current", "steps": 1, "export_model": False})
    assert tr.teacher_model is None and tr.extra_state() == {}
    groups = tr.collect(0, 0)
    items = tr.build_items(groups)
    assert items
    logits = tr.teacher_logits(items[:1])
    assert not logits.requires_grad  # the teacher side never carries a gradient, even as the live model
    with torch.no_grad():
        tr.model.get_output_embeddings().weight.mul_(2.0)
    assert not torch.allclose(tr.teacher_logits(items[:1]), logits)  # it follows the student at once
