"""Inspect AI: an env as an Inspect task gives, with the oracle's actions from Inspect's mock model, the scores of
`hero-gym eval --policy oracle`."""

import pytest

pytest.importorskip("inspect_ai", reason="the inspect extra (make test installs it)")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402

from hero_gym.actions import parse_action  # noqa: E402
from hero_gym.cli import main  # noqa: E402
from hero_gym.integrations.inspect_tasks import hero_gym_task, task_samples, tool_infos  # noqa: E402
from hero_gym.records import RunStore  # noqa: E402

MOCK = "mockllm/model"


def _output(action: str, tools: bool) -> ModelOutput:
    parsed = parse_action(action) if tools else None
    if parsed is not None and parsed.kind == "tool":
        out = ModelOutput.for_tool_call(MOCK, parsed.name, parsed.arguments)
    else:
        out = ModelOutput.from_content(MOCK, action)
    # With usage set, the mock model does not count tokens with tiktoken (whose encodings are a download).
    out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("env_id,tools", [("hero_gym/Tau2Retail-v0", True), ("hero_gym/WebShop-v0", False)])
def test_mock_model_playing_the_oracle_scores_as_hero_gym_eval(tmp_path, capsys, env_id, tools):
    tasks = [0, 1, 2]
    out = tmp_path / "oracle"
    assert main(["eval", "--env", env_id, "--policy", "oracle", "--tasks", "0-2", "--max-turns", "12",
                 "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    records = sorted(RunStore(out).load(), key=lambda r: r.task)
    outputs = [_output(t["action"], tools) for r in records for t in r.trajectory["turns"]]
    model = get_model(MOCK, custom_outputs=outputs)
    (log,) = inspect_eval(hero_gym_task(env_id, tasks=tasks, max_turns=12), model=model, max_samples=1,
                          log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success", log.error
    samples = sorted(log.samples, key=lambda s: s.metadata["task_index"])
    assert [s.metadata["task_index"] for s in samples] == tasks
    for s, r in zip(samples, records):
        (score,) = s.scores.values()
        assert score.value["reward"] == r.reward and score.value["turns"] == r.turns
        assert score.value["success"] == float(r.success) and score.explanation == r.termination_reason
    metrics = {(s.name, m): v.value for s in log.results.scores for m, v in s.metrics.items()}
    assert metrics[("reward", "mean")] == pytest.approx(sum(r.reward for r in records) / len(records)), metrics
    assert metrics[("turns", "mean")] == pytest.approx(sum(r.turns for r in records) / len(records))
    if tools:  # tool calls went through Inspect's tool-call messages, not as text
        assert any(m.role == "tool" for s in samples for m in s.messages)


def test_tool_infos_keep_the_envs_schemas():
    from hero_gym.envs.tau.env import domain_tools

    schemas = domain_tools("airline", "v1")[1]
    infos = {i.name: i for i in tool_infos(schemas)}
    for s in schemas:
        fn = s["function"]
        got = infos[fn["name"]].parameters.model_dump(exclude_none=True)
        assert set(got["properties"]) == set(fn["parameters"]["properties"])
        assert sorted(got["required"]) == sorted(fn["parameters"].get("required", []))
    nested = infos["book_reservation"].parameters.properties["passengers"]
    assert nested.type == "array" and nested.items is not None and nested.items.properties  # nested kept


def test_samples_carry_the_hero_gym_eval_seeds_and_reject_bad_tasks():
    from hero_gym.evaluate import episode_seed

    ds = task_samples("hero_gym/WebShop-v0", tasks=[4], seed=7, epochs=2)
    assert [s.metadata["seed"] for s in ds] == [episode_seed(7, 4, 0), episode_seed(7, 4, 1)]
    with pytest.raises(ValueError, match="out of range"):
        task_samples("hero_gym/WebShop-v0", tasks=[10**6])
    with pytest.raises(ValueError, match="no split"):
        task_samples("hero_gym/WebShop-v0", split="nope")
