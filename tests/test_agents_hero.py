"""HERO's turn selection: no-hint turns, non-actionable diagnoses and prompt echoes are not distilled, and counted."""

from __future__ import annotations

import json

import pytest

from hero_gym.agents.hero import HEROConfig
from hero_gym.policies.base import CallablePolicy

from agents_fixtures import SECRET, build


def hero(tmp_path, reflect, mode="trajectory", **cfg_kw):
    return build(tmp_path, "hero", mc=HEROConfig(topk=20, reflect_mode=mode),
                 reflector=CallablePolicy(reflect, name="reflector"), cfg_kw={"export_model": False, **cfg_kw})


def turn_of(prompt: str) -> int:
    return int(prompt.split("Look at turn ")[1].split()[0])


def test_non_actionable_diagnoses_are_empty_and_not_distilled(tmp_path):
    def reflect(messages, tools):
        action = messages[0]["content"].split("[Turn 3] AGENT ACTION:\n")[1].split("\n\n[Turn 3] ENVIRONMENT")[0]
        return "\n".join(json.dumps(d) for d in [
            {"turn": 1, "necessary": True, "valid": True, "cause": f"{SECRET} wrong item", "corrected_action": ""},
            {"turn": 2, "necessary": True, "valid": True, "cause": "none", "corrected_action": ""},  # nothing to act on
            {"turn": 3, "necessary": True, "valid": True, "cause": "N/A.", "corrected_action": action},  # = its action
        ])

    tr = hero(tmp_path, reflect)
    groups = tr.collect(0, 0)
    n_traj = sum(len(g) for g in groups)
    items = tr.build_items(groups)
    assert {it.turn_index for it in items} == {0} and len(items) == n_traj
    assert tr.counters["diagnosed_turns"] == n_traj and tr.counters["no_hint_turns"] == 2 * n_traj
    assert tr.selection_stats == {"reflections": n_traj, "diagnosed_turns": n_traj, "no_hint_turns": 2 * n_traj,
                                  "echo_turns": 0, "undiagnosed_turns": 0}


def test_per_turn_no_hint_and_echo_answers_select_nothing_and_the_log_says_so(tmp_path):
    def reflect(messages, tools):
        prompt = messages[0]["content"]
        t = turn_of(prompt)
        if t == 1:
            return "NO HINT"
        if t == 2:  # SmolLM2-style: repeat a stretch of the prompt
            return prompt[len(prompt) // 3: len(prompt) // 3 + 300]
        return f"{SECRET}: the agent should have written more letters e in turn {t}."

    tr = hero(tmp_path, reflect, mode="per_turn", steps=1)
    [rec] = tr.train()
    n_traj = rec["episodes"]
    assert rec["turns"] == 3 * n_traj and rec["scored_turns"] == n_traj
    assert (rec["diagnosed_turns"], rec["no_hint_turns"], rec["echo_turns"], rec["undiagnosed_turns"]) == (n_traj,) * 3 + (0,)
    assert rec["selected_frac"] == pytest.approx(1 / 3) and rec["echo_rate"] == pytest.approx(1 / 3)
    assert rec["reflections"] == 3 * n_traj and rec["total_echo_turns"] == n_traj
    log = json.loads((tmp_path / "hero" / "train_log.jsonl").read_text().splitlines()[0])
    assert log["selected_frac"] == pytest.approx(1 / 3) and log["echo_rate"] == pytest.approx(1 / 3)
    from hero_gym.benchmarks.learning_curves import log_table  # the curves' training table shows both
    assert {"selected_frac", "echo_rate", "invalid_action_rate"} <= set(log_table(tmp_path / "hero").columns)


def test_per_turn_answers_that_copy_the_action_or_loop_are_echoes_and_no_hint_is_not(tmp_path):
    # What SmolLM2-135M wrote as HERO's reflector in the CPU sweep: fine-tuned on actions, the turn's own action
    # (90% of the distilled turns of hero-B4-s1 had no other hint); untuned, one line said over and over.
    def reflect(messages, tools):
        prompt = messages[0]["content"]
        t = turn_of(prompt)
        if t == 1:
            return prompt.split("The agent's action in that turn was:\n")[1].split("\n")[0]
        if t == 2:
            return f"The agent's action in turn {t} was:\n\n" * 6
        return "NO HINT"

    tr = hero(tmp_path, reflect, mode="per_turn", steps=2)
    with pytest.warns(RuntimeWarning, match="diagnosed none of .* echoes of its prompt.*nothing is distilled") as w:
        rec, _ = tr.train()
    assert sum("diagnosed none" in str(x.message) for x in w) == 1  # once a run, not every step
    n_traj = rec["episodes"]
    assert rec["turns"] == 3 * n_traj
    assert (rec["diagnosed_turns"], rec["echo_turns"], rec["no_hint_turns"]) == (0, 2 * n_traj, n_traj)
    assert rec["scored_turns"] == 0 and rec["selected_frac"] == 0


def test_a_step_whose_turns_all_need_no_hint_does_not_warn(tmp_path):
    import warnings

    tr = hero(tmp_path, lambda messages, tools: "NO HINT", mode="per_turn", steps=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*diagnosed none")
        [rec] = tr.train()
    assert rec["no_hint_turns"] == rec["turns"] and rec["diagnosed_turns"] == 0


def test_a_reflection_that_echoes_its_prompt_is_no_diagnosis(tmp_path):
    # Echoing the whole trajectory prompt would otherwise parse its example JSON line as a diagnosis of turn 1.
    tr = hero(tmp_path, lambda messages, tools: messages[0]["content"])
    groups = tr.collect(0, 0)
    stats = tr.batch_loss(groups, 1.0)
    n_turns = sum(t.num_turns for g in groups for t in g)
    assert stats["loss_tokens"] == 0 and stats["echo_turns"] == n_turns and stats["diagnosed_turns"] == 0
    # A diagnosis whose own words are copied from the prompt's example is an echo too, beside a real one.
    example = {"turn": 1, "necessary": True, "valid": False, "cause": "the order id lacks its leading #"}
    tr2 = hero(tmp_path / "b", lambda m, t: json.dumps(example) + "\n" + json.dumps(
        {"turn": 2, "valid": False, "cause": f"{SECRET} typed a reply nobody asked for"}))
    items = tr2.build_items(groups)
    assert {it.turn_index for it in items} == {1}
    assert tr2.selection_stats["echo_turns"] == len(groups) * 2
    # The check can be switched off.
    off = build(tmp_path / "c", "hero", mc=HEROConfig(topk=20, echo_threshold=None),
                reflector=CallablePolicy(lambda m, t: json.dumps(example), name="copier"))
    assert {it.turn_index for it in off.build_items(groups)} == {0}


@pytest.mark.parametrize("mode", ["trajectory", "per_turn"])
def test_the_reflector_reads_every_environment_observation(tmp_path, mode):
    prompts = []

    def reflect(messages, tools):
        prompts.append(messages[0]["content"])
        return "NO HINT"

    tr = hero(tmp_path, reflect, mode=mode)
    groups = tr.collect(0, 0)
    tr.build_items(groups)
    trajs = [t for g in groups for t in g]
    per_traj = len(prompts) // len(trajs)
    for k, traj in enumerate(trajs):
        for prompt in prompts[k * per_traj:(k + 1) * per_traj]:
            assert traj.initial_observation in prompt
            for turn in traj.turns:
                assert turn.observation in prompt and turn.action.strip() in prompt
            assert ("SUCCESS" if traj.success else "FAILURE") in prompt


@pytest.mark.parametrize("bad,match", [({"echo_threshold": 0.0}, "echo_threshold"), ({"echo_ngram": 0}, "echo_ngram"),
                                       ({"reflect_mode": "sometimes"}, "reflect_mode")])
def test_bad_hero_settings_raise(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        build(tmp_path, "hero", mc=HEROConfig(**bad))
