"""verl: the tested pure-Python part of the agent loop (verl itself is not installed beside our stack)."""

import pytest

from hero_gym.integrations.verl import TokenServerPolicy, run_row, verl_rows
from hero_gym.policies.models import tiny_tokenizer
from integration_helpers import oracle_episode


def _scripted_server(tok, actions):
    """A token-in/token-out 'server' replaying `actions`; records every prompt it was sent."""
    sent = []

    def generate_fn(prompt_ids, params):
        assert params["max_tokens"] == 64 and params["temperature"] == 0.5
        ids = tok.encode(actions[len(sent)], add_special_tokens=False) + [tok.eos_token_id]
        sent.append((list(prompt_ids), ids))
        return ids, [-0.5] * len(ids)

    return generate_fn, sent


@pytest.mark.parametrize("env_id", ["hero_gym/Tau2Retail-v0", "hero_gym/WebShop-v0"])
def test_oracle_through_a_token_server_gives_token_exact_agent_loop_output(env_id):
    tok = tiny_tokenizer()
    (row,) = verl_rows(env_id, tasks=[1])
    traj = oracle_episode(env_id, 1, seed=row["extra_info"]["seed"])
    actions = [t.action for t in traj.turns]
    generate_fn, sent = _scripted_server(tok, actions)
    out = run_row(row["extra_info"], generate_fn, tok, sampling_params={"temperature": 0.5}, max_new_tokens=64)
    assert out["reward_score"] == traj.reward > 0 and out["extra_fields"]["agent_turns"] == len(actions)
    full = out["prompt_ids"] + out["response_ids"]
    assert len(out["response_ids"]) == len(out["response_mask"]) == len(out["response_logprobs"])
    # every request was exactly the sequence so far, and every generated token is in it verbatim, masked 1
    pos = len(out["prompt_ids"])
    for prompt, ids in sent:
        assert full[:len(prompt)] == prompt and full[len(prompt):len(prompt) + len(ids)] == ids
        assert out["response_mask"][len(prompt) - pos:len(prompt) - pos + len(ids)] == [1] * len(ids)
    assert sum(out["response_mask"]) == sum(len(ids) for _, ids in sent)
    assert all((lp == -0.5) == (m == 1) for lp, m in zip(out["response_logprobs"], out["response_mask"]))
    cut = agent_loop_output_fields_from(env_id, tok, row, actions, 10)
    assert len(cut["response_ids"]) == 10 and cut["extra_fields"]["truncated_response"]


def agent_loop_output_fields_from(env_id, tok, row, actions, length):
    generate_fn, _ = _scripted_server(tok, actions)
    return run_row(row["extra_info"], generate_fn, tok, sampling_params={"temperature": 0.5}, max_new_tokens=64,
                   response_length=length)


def test_failures_are_errors_not_results():
    tok = tiny_tokenizer()
    (row,) = verl_rows("hero_gym/WebShop-v0", tasks=[0])

    def broken(prompt_ids, params):
        raise ConnectionError("server gone")

    with pytest.raises(RuntimeError, match="server gone"):
        run_row(row["extra_info"], broken, tok)
    with pytest.raises(ValueError, match="verl_rows"):
        run_row({"env_id": "hero_gym/WebShop-v0"}, broken, tok)
    gen = TokenServerPolicy(lambda p, s: ([1, 2], [0.0]), tok).generate
    from hero_gym.policies.base import ChatRequest

    (g,) = gen([ChatRequest(messages=[], prompt_token_ids=[5])])
    assert g.error and "log-probs" in g.error
    with pytest.raises(ValueError, match="out of range"):
        verl_rows("hero_gym/WebShop-v0", tasks=[10**6])


def test_rows_carry_hero_gym_eval_seeds():
    from hero_gym.evaluate import episode_seed

    rows = verl_rows("hero_gym/WebShop-v0", tasks=[2], seed=3, attempts=2)
    assert [r["extra_info"]["seed"] for r in rows] == [episode_seed(3, 2, 0), episode_seed(3, 2, 1)]
    assert {r["agent_name"] for r in rows} == {"hero_gym"}


def test_agent_loop_class_needs_verl_and_says_so():
    try:
        import verl.experimental.agent_loop.agent_loop  # noqa: F401
    except ImportError:
        import hero_gym.integrations.verl as v

        with pytest.raises(ImportError, match="needs verl"):
            v.HeroGymAgentLoop  # noqa: B018
    else:  # verl importable: the class is a registered AgentLoopBase at a hydra-importable path
        from hero_gym.integrations.verl import HeroGymAgentLoop, register_agent_loop

        assert register_agent_loop("hero_gym") is HeroGymAgentLoop
        assert HeroGymAgentLoop.__qualname__ == "HeroGymAgentLoop"
