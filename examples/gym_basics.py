"""The Gymnasium API on a hero-gym env: one episode by hand, then four at once in an async vector env.

    python examples/gym_basics.py
"""

import gymnasium as gym

import hero_gym  # noqa: F401  (registers the ids)

env = gym.make("hero_gym/WebShop-v0", max_turns=5)
obs, info = env.reset(seed=0, options={"task_index": 0})
print(obs[:200], "...")
for action in ["search[shoes]", "click[< Prev]", "click[Nope]"]:
    obs, reward, terminated, truncated, info = env.step(action)
    print(f"{action!r}: reward={reward} invalid={info['invalid']} turns_left={info['turns_left']}")
env.close()

# Four episodes in worker processes; observations travel through shared memory as UTF-8.
envs = gym.make_vec("hero_gym/WebShop-v0", num_envs=4, vectorization_mode="async", max_episode_steps=3)
obs, info = envs.reset(seed=0)
for _ in range(3):
    obs, reward, terminated, truncated, info = envs.step(["search[red dress]"] * 4)
print("after 3 steps: truncated", truncated.tolist(), "reasons", list(info["termination_reason"]))
envs.close()
