"""Your own agent (a plain function) on TauBench, rolled out in a batch beside the oracle, scored per task.

    python examples/custom_agent.py
"""

import json

import pandas as pd

from hero_gym.benchmarks.stats import per_task
from hero_gym.policies import CallablePolicy, load_policy
from hero_gym.rollout import EpisodeSpec, run_episodes

ENV = "hero_gym/Tau2Retail-v0"


def my_agent(messages, tools):
    """Looks the customer up by email when one is mentioned; otherwise asks for it."""
    for word in messages[-1]["content"].split():
        if "@" in word:
            return json.dumps({"name": "find_user_id_by_email", "arguments": {"email": word.strip(".,!?")}})
    return "Could you tell me the email address on your account?"


episodes = [EpisodeSpec(task_index=t, attempt=a, seed=100 * t + a) for t in range(3) for a in range(2)]
for name, policy in [("my_agent", CallablePolicy(my_agent)), ("oracle", load_policy("oracle", env_id=ENV))]:
    trajs = run_episodes(ENV, policy, episodes, env_kwargs={"max_turns": 8})
    df = pd.DataFrame([{"task": t.task_index, "success": t.success, "reward": t.reward, "turns": t.num_turns}
                       for t in trajs])
    print(f"--- {name}: mean reward {df['reward'].mean():.2f}")
    print(per_task(df, k=2)[["n", "c", "pass@k", "pass^k", "turns"]].to_string())
