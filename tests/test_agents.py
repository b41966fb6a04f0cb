"""Trainers end to end on a tiny model: contexts, masks, loss descent, resume, evaluation records.

Most tests run a small scripted TextEnv (fast, deterministic); the slow ones run every method in the real
WebShop env.
"""

from __future__ import annotations

import dataclasses
import math
import json
import warnings

import pytest
import torch

from hero_gym.agents import TrainConfig, make_trainer
from hero_gym.agents.context import student_context
from hero_gym.agents.full_demo import FullDemoConfig
from hero_gym.agents.grpo import GRPOConfig
from hero_gym.agents.hero import HEROConfig
from hero_gym.agents.sdpo import SDPOConfig
from hero_gym.policies.base import CallablePolicy
from hero_gym.policies.models import tiny_model

from agents_fixtures import METHOD_CONFIGS, SECRET, build, config, loss_before_and_after, scripted_reflector, toy_rollout


# ----- configuration ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,match", [
    ("method", "ppo", "method"), ("split", "nope", "split"), ("tasks", [0, 99999], "task indices"),
    ("group_size", 0, "group_size"), ("teacher", "old", "teacher"), ("lr", 0.0, "lr"), ("tasks", [], "empty"),
    ("env_id", "hero_gym/Nope-v0", "unknown environment"),
])
def test_bad_config_raises(tmp_path, field, value, match):
    cfg = dataclasses.replace(config(tmp_path, "sdpo"), **{field: value})
    with pytest.raises(ValueError, match=match):
        cfg.validate()


def test_grpo_at_group_size_one_runs_and_says_loudly_it_has_no_signal(tmp_path):
    model, tok = tiny_model()
    with pytest.raises(ValueError, match="group_size=1"):
        make_trainer(config(tmp_path, "grpo", group_size=1), GRPOConfig(allow_single_rollout=False), model=model,
                     tokenizer=tok, rollout_fn=toy_rollout)
    with pytest.warns(RuntimeWarning, match="group_size=1.*no learning signal"):
        tr = make_trainer(config(tmp_path, "grpo", group_size=1, export_model=False), model=model, tokenizer=tok,
                          rollout_fn=toy_rollout)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once at the start, not again every step
        history = tr.train()
    assert [(h["groups"], h["zero_adv_groups"], h["active_tokens"], h["grad_norm"]) for h in history] == [(2, 2, 0, 0.0)] * 2
    # No gradient means no update at all, not even weight decay: what `run_summary` tells the user after such a run.
    assert all(torch.equal(v, tr.model.state_dict()[k]) for k, v in before.items())
    log = [json.loads(line) for line in (tmp_path / "grpo" / "train_log.jsonl").read_text().splitlines()]
    assert [r["zero_adv_groups"] for r in log] == [2, 2]


def test_grpo_warns_once_when_a_batch_has_no_reward_contrast(tmp_path):
    tr = build(tmp_path, "grpo")
    groups = tr.collect(0, 0)
    for g in groups:
        for t in g:
            t.reward = 0.5
    with pytest.warns(RuntimeWarning, match="equal rewards.*zero_adv_groups"):
        stats = tr.batch_loss(groups, 1.0)
    assert stats["zero_adv_groups"] == stats["groups"] == 2 and stats["active_tokens"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr.batch_loss(groups, 1.0)


# ----- contexts ------------------------------------------------------------------------------------------------
def test_student_context_is_the_trajectory_prefix_and_truncation_keeps_prompt_and_recent_turns(tmp_path):
    tr = build(tmp_path, "sdpo")
    traj = tr.collect(0, 0)[0][0]
    ids, spans = traj.token_ids(), traj.turn_spans()
    for t in range(traj.num_turns):
        assert student_context(traj, t) == ids[:spans[t][0]]
    last = traj.num_turns - 1
    prev = traj.turns[last - 1]
    cap = len(traj.prompt_token_ids) + len(prev.action_token_ids) + len(prev.obs_token_ids) + len(traj.turns[last].action_token_ids)
    cut = student_context(traj, last, cap)
    assert cut == list(traj.prompt_token_ids) + prev.action_token_ids + prev.obs_token_ids  # oldest turn dropped
    tiny = student_context(traj, last, len(traj.turns[last].action_token_ids) + 5)
    assert tiny == ids[:spans[last][0]][-5:]  # only the newest tokens survive a cap below the prompt's length
    with pytest.raises(IndexError):
        student_context(traj, traj.num_turns)


def _decode(tok, ids):
    return tok.decode(ids, skip_special_tokens=False)


@pytest.mark.parametrize("method", ["sdpo", "hero", "full-demo"])
def test_teacher_contexts_hold_exactly_the_promised_block(tmp_path, method):
    tr = build(tmp_path, method)
    groups = tr.collect(0, 0)
    items = tr.build_items(groups)
    trajs = [t for g in groups for t in g]
    header = tr.teacher_builder.header_ids
    assert header and items
    for it in items:
        traj = trajs[it.traj_index]
        turn = traj.turns[it.turn_index]
        # Student: exactly the trajectory's own prefix, nothing privileged (ids and decoded text).
        assert it.student_ids == traj.token_ids()[:traj.turn_spans()[it.turn_index][0]]
        assert it.action_ids == turn.action_token_ids
        s_text = _decode(tr.tokenizer, it.student_ids)
        assert "Hindsight" not in s_text and SECRET not in s_text and turn.observation not in s_text
        # Teacher: the student's ids with one user block spliced in before the assistant header.
        n = len(it.teacher_ids) - len(it.student_ids)
        assert it.teacher_ids[:len(it.student_ids) - len(header)] == it.student_ids[:-len(header)]
        assert it.teacher_ids[-len(header):] == header == it.student_ids[-len(header):]
        block = _decode(tr.tokenizer, it.teacher_ids[len(it.student_ids) - len(header):-len(header)])
        assert n > 0 and block.startswith("<|im_start|>user\n[Hindsight")
        if method == "sdpo":
            assert turn.observation in block and "ended" not in block
        elif method == "hero":
            assert turn.observation in block and f"{SECRET} on turn {it.turn_index + 1}" in block
            assert ("SUCCESS" in block) == traj.success and "FAILURE" in block or traj.success
        else:
            group = groups[it.traj_index // 2]
            demo = next(o for o in group if o is not traj)  # threshold 0: the first other sibling
            assert all(t.action.strip()[:20] in block for t in demo.turns if t.action.strip())
    assert tr.teacher_builder.fallback_count == 0


def test_hero_distils_only_diagnosed_turns_and_counts_the_rest(tmp_path):
    tr = build(tmp_path, "hero", reflector=scripted_reflector((2, 7)))  # turn 7 does not exist
    groups = tr.collect(0, 0)
    items = tr.build_items(groups)
    n_traj = sum(len(g) for g in groups)
    assert {it.turn_index for it in items} == {1} and len(items) == n_traj
    assert tr.counters["diagnosed_turns"] == n_traj
    assert tr.counters["diagnoses_out_of_range"] == n_traj
    assert tr.counters["undiagnosed_turns"] == sum(t.num_turns - 1 for g in groups for t in g)
    # A reflector that writes nothing usable gives no loss at all.
    tr2 = build(tmp_path, "hero", reflector=CallablePolicy(lambda m, t: "no idea", name="mute"))
    stats = tr2.batch_loss(tr2.collect(0, 0), 1.0)
    assert stats["loss_tokens"] == 0 and stats["loss"] == 0.0
    assert all(p.grad is None for p in tr2.model.parameters())


def test_full_demo_without_success_gets_no_loss(tmp_path):
    model, tok = tiny_model()
    tr = make_trainer(config(tmp_path, "full-demo"), FullDemoConfig(success_threshold=2.0), model=model, tokenizer=tok,
                      rollout_fn=toy_rollout)
    groups = tr.collect(0, 0)
    assert tr.build_items(groups) == []
    assert tr.counters["trajectories_without_demo"] == sum(len(g) for g in groups)


def test_full_demo_step_hint_names_the_demonstrations_action_at_the_same_turn(tmp_path):
    import copy

    model, tok = tiny_model()
    held = {}
    kw = dict(model=model, tokenizer=tok, rollout_fn=toy_rollout, oracle_fn=lambda traj: held["demo"])
    plain = make_trainer(config(tmp_path / "p", "full-demo"), FullDemoConfig(demo_source="oracle"), **kw)
    hinted = make_trainer(config(tmp_path / "h", "full-demo"), FullDemoConfig(demo_source="oracle", demo_step_hint=True),
                          **kw)
    groups = plain.collect(0, 0)
    held["demo"] = copy.deepcopy(groups[1][0])
    held["demo"].reward = 1.0
    for i, t in enumerate(held["demo"].turns):
        t.action = f"action number {i}"
    plain.prepare_groups(groups)
    hinted.prepare_groups(groups)
    traj = groups[0][0]
    demo = hinted.find_demo(traj, groups[0])
    assert demo is not None and len(demo.turns) >= 2
    for t in range(len(demo.turns)):
        base = plain.privileged_block(traj, t, groups[0])
        block = hinted.privileged_block(traj, t, groups[0])
        assert block.startswith(base) and "In the worked example" not in base
        assert block.endswith(f"the action at this step (turn {t + 1}) was: {demo.turns[t].action}")
    assert hinted.privileged_block(traj, len(demo.turns), groups[0]).endswith("had already ended at this step "
                                                                              f"(turn {len(demo.turns) + 1}).")


def test_full_demo_page_aligned_hint_names_the_demonstrations_step_on_the_students_page(tmp_path):
    import copy

    from hero_gym.agents.full_demo import page_aligned_step
    from hero_gym.types import Trajectory, Turn

    def traj(pages_and_actions):  # [(page the action was taken on, action), ...]; each turn answers the next page
        pages = [p for p, _ in pages_and_actions] + ["end"]
        return Trajectory(env_id="e", task_index=0, seed=0, initial_observation=pages[0],
                          turns=[Turn(index=i, action=a, observation=pages[i + 1])
                                 for i, (_, a) in enumerate(pages_and_actions)])

    # Option clicks leave the item page's text unchanged (as WebShop's do), so the page repeats.
    demo = traj([("S", "search[x]"), ("R", "click[p1]"), ("I", "click[xx-large]"), ("I", "click[green]"),
                 ("I", "click[buy now]")])
    student = traj([("S", "search[x]"), ("R2", "click[next >]"), ("R", "click[p1]"), ("I", "click[green]"),
                    ("I", "click[green]"), ("I", "click[xx-large]"), ("I", "click[buy now]")])
    steps = [page_aligned_step(demo, student, t) for t in range(len(student.turns))]
    # turn 1: page R2 never shown in the demonstration; turn 3: nothing taken on I yet -> xx-large; turns 4-5:
    # green taken -> xx-large still missing; turn 6: both taken -> buy now.
    assert steps == [0, None, 1, 2, 2, 2, 4]

    model, tok = tiny_model()
    held = {}
    kw = dict(model=model, tokenizer=tok, rollout_fn=toy_rollout, oracle_fn=lambda traj: held["demo"])
    hinted = make_trainer(config(tmp_path, "full-demo"), FullDemoConfig(demo_source="oracle", demo_step_hint=True,
                                                                           demo_hint_align="page"), **kw)
    groups = hinted.collect(0, 0)
    held["demo"] = copy.deepcopy(groups[0][0])
    held["demo"].reward = 1.0
    held["demo"].turns[0].action = "the demonstration's first action"
    hinted.prepare_groups(groups)
    me = groups[0][0]  # the same pages as the demonstration
    assert hinted.privileged_block(me, 0, groups[0]).endswith("the next action was: the demonstration's first action")
    other = copy.deepcopy(me)
    other.initial_observation = "a page the demonstration never showed"
    hinted._demos[id(other)], hinted._demo_trajs[id(other)] = hinted._demos[id(me)], held["demo"]
    assert hinted.privileged_block(other, 0, groups[0]) == hinted._demos[id(me)]
    with pytest.raises(ValueError, match="demo_hint_align"):
        FullDemoConfig(demo_hint_align="state").validate(config(tmp_path, "full-demo"))


# ----- gradients and loss ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["grpo", "sdpo", "hero"])
def test_gradient_is_zero_outside_agent_tokens(tmp_path, method):
    # Per-turn student passes: one lm_head call whose every position is checked (the trajectory pass is shown
    # equal to this one in test_student_pass_trajectory_equals_per_turn).
    tr = build(tmp_path, method, cfg_kw={"micro_batch_size": 100, "teacher": "frozen", "student_pass": "turn"})
    groups = tr.collect(0, 0)
    grads = []
    head = tr.model.get_output_embeddings()

    def keep(module, inputs, output):
        if output.requires_grad:
            output.register_hook(lambda g: grads.append(g.detach().clone()))

    handle = head.register_forward_hook(keep)
    try:
        tr.batch_loss(groups, 1.0)
    finally:
        handle.remove()
    assert len(grads) == 1
    g = grads[0]  # [rows, max_action + 1, vocab]: position j predicts action slot j; the last predicts nothing
    items = tr.build_items(groups) if method != "grpo" else None
    lengths = [len(i.action_ids) for i in items] if items is not None else \
        [len(t.action_token_ids) for gr in groups for tr_ in gr for t in tr_.turns if t.action_token_ids]
    if method == "grpo":  # zero-advantage rows are skipped entirely, so match by row count
        assert g.shape[0] <= len(lengths)
    per_pos = g.abs().sum(-1)
    assert torch.all(per_pos[:, -1] == 0)  # the position after the last action token
    width = g.shape[1] - 1
    for r in range(g.shape[0]):
        nz = (per_pos[r, :width] != 0).nonzero().flatten().tolist()
        assert nz and nz[0] >= width - max(lengths)  # left padding slots carry no gradient
        if items is not None:
            assert torch.all(per_pos[r, :width - lengths[r]] == 0)


@pytest.mark.parametrize("method", ["sdpo", "full-demo", "hero"])
def test_repeated_updates_on_a_fixed_batch_reduce_its_distillation_loss(tmp_path, method):
    tr = build(tmp_path, method, cfg_kw={"teacher": "frozen", "lr": 1e-2})
    # A fixed teacher that disagrees with the student (another random init, sharpened) gives a clear target.
    teacher, _ = tiny_model(seed=1)
    with torch.no_grad():
        teacher.get_output_embeddings().weight.mul_(3.0)
    tr.teacher_model = teacher.eval()
    first, last = loss_before_and_after(tr, 8)
    assert first > 0 and last < 0.5 * first


def test_repeated_grpo_updates_raise_likelihood_of_better_than_average_trajectories(tmp_path):
    tr = build(tmp_path, "grpo", cfg_kw={"lr": 3e-3})
    groups = tr.collect(0, 0)
    trajs = [t for g in groups for t in g]
    from hero_gym.agents.losses import group_advantages
    from hero_gym.agents.scoring import action_logits, token_logprobs

    adv = group_advantages([t.reward for t in trajs], 2)
    assert adv.abs().sum() > 0, "toy batch has no reward contrast; change the seed"

    def objective():  # sum over trajectories of advantage x mean log-prob of its actions
        total = 0.0
        with torch.no_grad():
            for a, t in zip(adv.tolist(), trajs):
                for i, turn in enumerate(t.turns):
                    lg, tg, m = action_logits(tr.model, [student_context(t, i)], [turn.action_token_ids], tr.pad_id)
                    total += a * float((token_logprobs(lg, tg) * m).sum())
        return total

    before = objective()
    for _ in range(5):
        tr.optimizer.zero_grad()
        tr.batch_loss(groups, 1.0)
        tr.optimizer.step()
    assert objective() > before + 1.0


@pytest.mark.parametrize("method", ["grpo", "sdpo"])
def test_student_pass_trajectory_equals_per_turn(tmp_path, method):
    a = build(tmp_path, method, cfg_kw={"student_pass": "turn", "teacher": "frozen"})
    b = build(tmp_path, method, cfg_kw={"student_pass": "trajectory", "teacher": "frozen"})
    c = build(tmp_path, method, cfg_kw={"student_pass": "trajectory", "teacher": "frozen"})
    groups = a.collect(0, 0)
    c.config.max_context_tokens = groups[0][0].turn_spans()[1][1]  # the last turn no longer fits
    assert b.whole_trajectory_ok(groups[0][0], [2]) and not c.whole_trajectory_ok(groups[0][0], [2])
    losses = [t.batch_loss(groups, 1.0) for t in (a, b)]
    assert losses[0]["loss"] != 0
    assert losses[0]["loss"] == pytest.approx(losses[1]["loss"], rel=1e-4, abs=1e-9)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-3, atol=1e-6)
    c.batch_loss(groups, 1.0)  # mixed: long trajectories fall back to per-turn, truncated contexts
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in c.model.parameters())
    # a context the cap cut is counted (its log-probs are not the sampler's); uncut ones are not
    assert a.counters.get("truncated_context_turns", 0) == b.counters.get("truncated_context_turns", 0) == 0
    cap = c.config.max_context_tokens
    cut = sum(1 for g in groups for t in g for i, turn in enumerate(t.turns)
              if turn.action_token_ids and t.turn_spans()[i][0] > cap - len(turn.action_token_ids))
    assert cut >= 1 and c.counters["truncated_context_turns"] == cut


def test_trajectory_logits_match_per_turn_logits(tmp_path):
    from hero_gym.agents.scoring import action_logits, trajectory_action_logits

    tr = build(tmp_path, "sdpo")
    traj = tr.collect(0, 0)[0][0]
    spans = traj.turn_spans()
    whole = trajectory_action_logits(tr.model, traj.token_ids(), spans)
    for t, (s, e) in enumerate(spans):
        lg, _, m = action_logits(tr.model, [student_context(traj, t)], [traj.turns[t].action_token_ids], tr.pad_id)
        torch.testing.assert_close(whole[t], lg[0, -(e - s):], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="spans"):
        trajectory_action_logits(tr.model, traj.token_ids(), [(0, 3)])


def test_gradient_accumulation_collects_several_batches_per_step(tmp_path):
    tr = build(tmp_path, "sdpo", cfg_kw={"grad_accum": 2, "steps": 1})
    [rec] = tr.train()
    assert rec["episodes"] == 8 and rec["step"] == 1


def test_micro_batch_size_does_not_change_the_loss_or_gradient(tmp_path):
    a = build(tmp_path, "sdpo", cfg_kw={"micro_batch_size": 1, "teacher": "frozen"})
    b = build(tmp_path, "sdpo", cfg_kw={"micro_batch_size": 64, "teacher": "frozen"})
    groups = a.collect(0, 0)
    la, lb = a.batch_loss(groups, 1.0)["loss"], b.batch_loss(groups, 1.0)["loss"]
    assert la == pytest.approx(lb, rel=1e-4)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-3, atol=1e-7)


# ----- the loop: steps, resume, evaluation --------------------------------------------------------------------
@pytest.mark.parametrize("method", ["grpo", "sdpo", "full-demo", "hero"])
def test_each_method_trains_end_to_end_and_logs(tmp_path, method):
    tr = build(tmp_path, method)
    seen = []
    collect = tr.collect
    tr.collect = lambda step, micro: seen.append(collect(step, micro)) or seen[-1]
    before = [p.detach().clone() for p in tr.model.parameters()]
    history = tr.train()
    assert [h["step"] for h in history] == [1, 2]
    assert all(h["loss_tokens"] > 0 and h["episodes"] == 4 and h["env_turns"] == 12 for h in history)
    log = [json.loads(line) for line in (tmp_path / method / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["method"] == method for r in log)
    changed = any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))
    assert changed or method == "grpo" and all(h["active_tokens"] == 0 for h in history)
    # What a scientist needs to say why a method does not learn, from the rollouts of that very step.
    for rec, groups in zip(log, seen):
        trajs = [t for g in groups for t in g]
        turns = [turn for t in trajs for turn in t.turns]
        assert rec["invalid_action_rate"] == sum(t.invalid for t in turns) / len(turns)
        assert rec["gen_tokens"] == sum(len(t.action_token_ids) for t in turns) > 0
        assert rec["mean_reward"] == pytest.approx(sum(t.reward for t in trajs) / len(trajs))
        assert rec["success_rate"] == sum(t.success for t in trajs) / len(trajs)
        assert rec["grad_norm"] >= 0 and math.isfinite(rec["loss"]) and rec["gen_tokens_per_s"] > 0
        if method == "grpo":
            assert rec["zero_adv_groups"] == sum(len({t.reward for t in g}) == 1 for g in groups)
        else:
            assert rec["selected_frac"] == rec["scored_turns"] / rec["turns"] and rec["turns"] == len(turns)
    assert 0 < log[0]["invalid_action_rate"] < 1 or 0 < log[1]["invalid_action_rate"] < 1


def test_logged_grad_norm_is_the_norm_before_clipping(tmp_path):
    tr = build(tmp_path, "sdpo", cfg_kw={"max_grad_norm": 1e-6, "steps": 1, "export_model": False})
    applied = []
    tr.optimizer.register_step_pre_hook(lambda opt, args, kwargs: applied.append(float(torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in tr.model.parameters() if p.grad is not None])))))
    [rec] = tr.train()
    assert applied[0] == pytest.approx(1e-6, rel=1e-2)  # the update used clipped gradients ...
    assert rec["grad_norm"] > 1e-5  # ... while the log shows how large they were


@pytest.mark.parametrize("method", ["grpo", "grpo-ppo", "hero"])
def test_resume_gives_the_same_next_step(tmp_path, method):
    # grpo-ppo: two epochs of shuffled mini-batches, whose split must not depend on the process
    mc = GRPOConfig(ppo_epochs=2, mini_batch_size=3) if method == "grpo-ppo" else None
    method = "grpo" if mc else method
    straight = build(tmp_path / "a", method, cfg_kw={"steps": 2}, mc=mc)
    full = straight.train()
    first = build(tmp_path / "b", method, cfg_kw={"steps": 1}, mc=mc)
    first.train()
    resumed = build(tmp_path / "b", method, cfg_kw={"steps": 2}, mc=mc)  # same out_dir: resumes from step 1
    assert resumed.step == 1
    again = resumed.train()
    assert len(again) == 1 and again[0]["step"] == 2
    for key in ("loss", "loss_tokens", "mean_reward", "grad_norm"):
        assert again[0][key] == full[1][key], key
    for pa, pb in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(pa, pb)
    if method == "hero":
        for pa, pb in zip(straight.teacher_model.parameters(), resumed.teacher_model.parameters()):
            assert torch.equal(pa, pb)


def test_resume_refuses_another_methods_checkpoint(tmp_path):
    build(tmp_path, "sdpo", cfg_kw={"steps": 1}).train()
    model, tok = tiny_model()
    with pytest.raises(ValueError, match="sdpo"):
        make_trainer(config(tmp_path, "hero", out_dir=str(tmp_path / "sdpo")), model=model, tokenizer=tok,
                     rollout_fn=toy_rollout, reflector=scripted_reflector())


def test_resume_refuses_a_checkpoint_with_other_settings(tmp_path):
    build(tmp_path, "sdpo", cfg_kw={"steps": 1, "export_model": False}).train()
    with pytest.raises(ValueError, match="turn_budget: stored 15, asked 4"):
        build(tmp_path, "sdpo", cfg_kw={"steps": 2, "turn_budget": 4})
    assert build(tmp_path, "sdpo", cfg_kw={"steps": 5, "eval_k": 3}).step == 1  # steps/eval may change


def test_evaluation_writes_harness_records(tmp_path):
    from hero_gym.records import RunStore, load_frame

    tr = build(tmp_path, "sdpo", cfg_kw={"steps": 1, "eval_split": "test", "eval_tasks": [0, 2], "eval_k": 2})
    tr.train()
    run = tmp_path / "sdpo" / "eval" / "final"
    recs = RunStore(run).load()
    assert sorted((r.task, r.attempt) for r in recs) == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert all(r.method == "sdpo" and r.train_budget == 15 and r.split == "test" for r in recs)
    df = load_frame([run])
    assert len(df) == 4 and set(df["method"]) == {"sdpo"}
    # The exported model folder reloads with the trained weights (what `hero-gym eval --policy hf:...` reads).
    from hero_gym.policies.models import load_model

    reloaded, _ = load_model(str(tmp_path / "sdpo" / "model"), dtype=torch.float32)
    for (n, p), q in zip(tr.model.named_parameters(), reloaded.parameters()):
        assert torch.equal(p, q), n


def test_periodic_evaluations_use_periodic_eval_k_and_the_final_one_eval_k(tmp_path):
    from hero_gym.records import RunStore

    tr = build(tmp_path, "sdpo", cfg_kw={"steps": 2, "eval_split": "test", "eval_tasks": [0, 2], "eval_k": 3,
                                         "eval_every": 1, "periodic_eval_k": 1, "export_model": False})
    tr.train()
    periodic = RunStore(tmp_path / "sdpo" / "eval" / "step_00001").load()
    final = RunStore(tmp_path / "sdpo" / "eval" / "final").load()
    assert sorted((r.task, r.attempt) for r in periodic) == [(0, 0), (2, 0)]
    assert len(final) == 6 and {r.attempt for r in final} == {0, 1, 2}


def test_ema_teacher_moves_towards_the_student_and_frozen_does_not(tmp_path):
    # An asymmetric rate: swapping teacher and student in the update, or using 1 - rate, gives other weights.
    ema = build(tmp_path / "e", "sdpo", cfg_kw={"steps": 1, "teacher": "ema", "teacher_update_rate": 0.3})
    frozen = build(tmp_path / "f", "sdpo", cfg_kw={"steps": 1, "teacher": "frozen"})
    init = [p.detach().clone() for p in ema.model.parameters()]
    ema.train()
    frozen.train()
    moved = 0.0
    for p0, pt, ps in zip(init, ema.teacher_model.parameters(), ema.model.parameters()):
        torch.testing.assert_close(pt, 0.7 * p0 + 0.3 * ps)
        moved += float((ps.detach() - p0).abs().sum())
    assert moved > 0  # the student did move, so the check above can tell the rates apart
    for p0, pt in zip(init, frozen.teacher_model.parameters()):
        assert torch.equal(p0, pt)
    cur = build(tmp_path / "c", "sdpo", cfg_kw={"teacher": "current"})
    assert cur.teacher_model is None


# ----- real environment ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("method", ["grpo", "sdpo", "full-demo", "hero", "hero-self"])
def test_each_method_trains_in_webshop(tmp_path, method):
    self_reflect = method == "hero-self"  # the tiny model reflects on itself (it cannot write usable diagnoses)
    method = "hero" if self_reflect else method
    model, tok = tiny_model()
    cfg = TrainConfig(env_id="hero_gym/WebShop-v0", split="train", tasks=[0, 1, 2], method=method, group_size=2,
                      tasks_per_step=2, steps=2, turn_budget=3, max_new_tokens=12, out_dir=str(tmp_path / method),
                      micro_batch_size=4)
    mc = {"grpo": GRPOConfig(), "sdpo": SDPOConfig(), "full-demo": FullDemoConfig(demo_source="oracle"),
          "hero": HEROConfig()}[method]
    kw = {"reflector": scripted_reflector((1, 2))} if method == "hero" and not self_reflect else {}
    tr = make_trainer(cfg, mc, model=model, tokenizer=tok, **kw)
    if self_reflect:
        history = tr.train()
        assert tr.reflector is tr.policy
        # every turn lands in exactly one selection class
        assert sum(tr.counters.get(k, 0) for k in tr.TURN_CLASSES) == sum(h["env_turns"] for h in history)
        assert all(sum(h[k] for k in tr.TURN_CLASSES) == h["turns"] == h["env_turns"] for h in history)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = tr.train()
    assert len(history) == 2 and all(h["episodes"] == 4 for h in history)
    if method != "grpo":  # GRPO's tiny random model rarely earns reward contrast in 3 turns
        assert all(h["loss_tokens"] > 0 and h["loss"] > 0 for h in history)
    if method == "full-demo":
        assert tr.counters.get("trajectories_without_demo", 0) == 0  # the oracle always succeeds


@pytest.mark.slow
def test_lora_trains_only_adapters_and_resumes(tmp_path):
    pytest.importorskip("peft")  # optional extra `lora`
    tr = build(tmp_path, "sdpo", cfg_kw={"lora": True, "lora_r": 4, "steps": 1, "teacher": "ema"})
    named = dict(tr.model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in named.items()}
    tr.train()
    after = dict(tr.model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in named if n not in trainable)
    assert any(not torch.equal(before[n], after[n]) for n in trainable)
    resumed = build(tmp_path, "sdpo", cfg_kw={"lora": True, "lora_r": 4, "steps": 1, "teacher": "ema"})
    assert resumed.step == 1
    for n, p in resumed.model.named_parameters():
        assert torch.equal(p, after[n])


@pytest.mark.slow
def test_distributed_data_parallel_keeps_ranks_identical(tmp_path):
    from pathlib import Path

    from agents_fixtures import run_two_ranks

    script = tmp_path / "ddp.py"
    script.write_text(f"""
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from agents_fixtures import config, toy_rollout, METHOD_CONFIGS
from hero_gym.agents import make_trainer
from hero_gym.policies.models import tiny_model
m, tok = tiny_model()
cfg = config(Path({str(tmp_path)!r}), "sdpo", distributed=True, device="cpu", steps=2, teacher="frozen")
tr = make_trainer(cfg, METHOD_CONFIGS["sdpo"](), model=m, tokenizer=tok, rollout_fn=toy_rollout)
h = tr.train()
print("RESULT", tr.rank, tr.world_size, h[-1]["loss"], sum(float(p.double().sum()) for p in tr.model.parameters()),
      h[-1]["episodes"])
""")
    out = run_two_ranks(script, timeout=900)
    rows = sorted(line.split()[1:] for line in out.stdout.splitlines() if line.startswith("RESULT"))
    assert out.returncode == 0 and len(rows) == 2, out.stderr[-2000:]
    assert [r[:2] for r in rows] == [["0", "2"], ["1", "2"]]
    # each rank rolled out its own 2 tasks x G=2 and the step record pools both ranks' rollouts and losses...
    assert rows[0][4] == rows[1][4] == "8" and rows[0][2] == rows[1][2]
    assert rows[0][3] == rows[1][3]  # ...and the averaged update kept the weights identical
    assert len((tmp_path / "sdpo" / "train_log.jsonl").read_text().splitlines()) == 2  # rank 0 logs alone


def test_hero_reflection_prompt_covers_every_turn_within_the_length_cap(tmp_path):
    model, tok = tiny_model()
    tr = make_trainer(config(tmp_path, "hero"), HEROConfig(max_transcript_chars=3000), model=model, tokenizer=tok,
                      rollout_fn=toy_rollout, reflector=scripted_reflector())
    traj = tr.collect(0, 0)[0][0]
    for t in traj.turns:
        t.observation = "x" * 5000  # every answer far longer than the cap allows
    req = tr.reflection_request(traj)
    text = req.messages[0]["content"]
    assert len(text) < 3000 + len(tr.reflect_template)
    assert all(f"[Turn {i}] AGENT ACTION" in text for i in range(1, traj.num_turns + 1))
    assert "from 1 to 3" in text and ("SUCCESS" in text or "FAILURE" in text)
    assert req.temperature == 0.0 and req.max_new_tokens == 3 * 64


@pytest.mark.parametrize("precision,dtype", [("auto", torch.float32), ("bf16-mixed", torch.float32),
                                             ("bf16", torch.bfloat16)])
def test_precision_modes_keep_the_promised_weight_dtype_and_train(tmp_path, precision, dtype):
    tr = build(tmp_path, "sdpo", cfg_kw={"precision": precision, "steps": 1, "export_model": False})
    assert all(p.dtype == dtype for p in tr.model.parameters())
    before = [p.detach().clone() for p in tr.model.parameters()]
    [rec] = tr.train()
    assert rec["loss_tokens"] > 0 and math.isfinite(rec["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))


def test_failed_rollouts_are_counted_and_warned_about(tmp_path):
    tr = build(tmp_path, "sdpo", cfg_kw={"steps": 1}, policy=CallablePolicy(lambda m, t: 1 / 0, name="broken"))
    with pytest.warns(RuntimeWarning, match="every rollout failed.*ZeroDivisionError"):
        [rec] = tr.train()
    assert rec["episode_errors"] == 4 and rec["loss_tokens"] == 0


def test_hero_per_turn_reflection_asks_once_per_turn_and_uses_free_text(tmp_path):
    asked = []

    def review(messages, tools):
        text = messages[0]["content"]
        asked.append(text)
        turn = int(text.split("Look at turn ")[1].split()[0])
        return "" if turn == 2 else f"{SECRET} review of turn {turn}"

    model, tok = tiny_model()
    tr = make_trainer(config(tmp_path, "hero"), HEROConfig(reflect_mode="per_turn", topk=20), model=model,
                      tokenizer=tok, rollout_fn=toy_rollout, reflector=CallablePolicy(review, name="reviewer"))
    groups = tr.collect(0, 0)
    items = tr.build_items(groups)
    n_traj = sum(len(g) for g in groups)
    assert len(asked) == 3 * n_traj  # one request per agent turn
    assert {it.turn_index for it in items} == {0, 2}  # the empty review of turn 2 gives no diagnosis
    for it in items:
        block = tok.decode(it.teacher_ids)
        assert f"{SECRET} review of turn {it.turn_index + 1}" in block
        assert SECRET not in tok.decode(it.student_ids)
    assert tr.counters["undiagnosed_turns"] == n_traj
    with pytest.raises(ValueError, match="reflect_mode"):
        make_trainer(config(tmp_path, "hero"), HEROConfig(reflect_mode="sometimes"), model=model, tokenizer=tok,
                     rollout_fn=toy_rollout, reflector=CallablePolicy(review, name="reviewer"))


def test_bf16_evaluation_decodes_from_a_bf16_copy_and_leaves_the_trained_weights_alone(tmp_path):
    from hero_gym.records import RunStore

    seen = []

    def rollout(env_id, policy, specs, **kw):
        seen.append({p.dtype for p in policy.model.parameters()})
        return toy_rollout(env_id, policy, specs, **kw)

    tr = build(tmp_path, "sdpo", cfg_kw={"steps": 1, "eval_split": "test", "eval_tasks": [0, 2], "eval_k": 2,
                                         "eval_precision": "bf16", "export_model": False}, rollout_fn=rollout)
    tr.train()
    assert seen[0] == {torch.float32}  # the training rollout: the trained weights
    assert seen[-1] == {torch.bfloat16}  # the evaluation: a bf16 copy
    assert {p.dtype for p in tr.model.parameters()} == {torch.float32}
    assert len(RunStore(tmp_path / "sdpo" / "eval" / "final").load()) == 4
    with pytest.raises(ValueError, match="eval_precision must be same or bf16"):
        config(tmp_path, "sdpo", eval_precision="fp16").validate()


def test_a_run_killed_during_a_periodic_evaluation_keeps_the_step_and_finishes_the_evaluation(tmp_path):
    from hero_gym.records import RunStore

    kw = {"steps": 2, "eval_split": "test", "eval_tasks": [0, 2], "eval_k": 1, "eval_every": 1, "export_model": False}
    tr = build(tmp_path, "sdpo", cfg_kw=kw)

    def killed(final=False):
        raise KeyboardInterrupt

    tr.evaluate = killed
    with pytest.raises(KeyboardInterrupt):
        tr.train()
    meta = json.loads((tmp_path / "sdpo" / "checkpoint" / "meta.json").read_text())
    assert meta["step"] == 1  # the step's training was saved before its evaluation began
    resumed = build(tmp_path, "sdpo", cfg_kw=kw)
    assert resumed.step == 1
    resumed.train()
    steps = [json.loads(line)["step"] for line in (tmp_path / "sdpo" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # step 1 was not trained twice
    assert len(RunStore(tmp_path / "sdpo" / "eval" / "step_00001").load()) == 2  # the interrupted evaluation ran
    assert len(RunStore(tmp_path / "sdpo" / "eval" / "final").load()) == 2
