"""hero-gym environments. Every registered id lives here, in one place.

| id | benchmark | splits (tasks) | default max_turns |
|---|---|---|---|
| hero_gym/TauRetail-v0 | TauBench v1 retail | train 500, test 115, dev 20 | 30 |
| hero_gym/TauAirline-v0 | TauBench v1 airline | test 50 | 30 |
| hero_gym/Tau2Retail-v0 | tau2-bench retail (HEAD tasks) | train 74, test 40, base 114 | 30 |
| hero_gym/Tau2Airline-v0 | tau2-bench airline (HEAD tasks) | train 30, test 20, base 50 | 30 |
| hero_gym/WebShop-v0 | WebShop 1k products, synthetic goals | test 500, train 6410, all 6910 | 15 |
| hero_gym/WebShopHuman-v0 | WebShop, human-written goals | test, eval, train, all (sizes depend on the catalogue) | 15 |
"""

from hero_gym.registry import EnvSpec, register_env

# tau-bench agents cap an episode at 30 agent actions (max_num_steps=30); we keep that as the default budget.
_TAU = "hero_gym.envs.tau.env:TauEnv"
register_env(EnvSpec(
    id="hero_gym/TauRetail-v0", entry_point=_TAU, splits={"train": 500, "test": 115, "dev": 20},
    default_split="test", default_max_turns=30, kwargs={"domain": "retail", "version": "v1"},
    description="TauBench v1 retail: customer-service agent with 16 tools, simulated user, DB-state reward"))
register_env(EnvSpec(
    id="hero_gym/TauAirline-v0", entry_point=_TAU, splits={"test": 50},
    default_split="test", default_max_turns=30, kwargs={"domain": "airline", "version": "v1"},
    description="TauBench v1 airline: 14 tools, simulated user, DB-state reward (test only; OOD in HERO)"))
register_env(EnvSpec(
    id="hero_gym/Tau2Retail-v0", entry_point=_TAU, splits={"train": 74, "test": 40, "base": 114},
    default_split="test", default_max_turns=30, kwargs={"domain": "retail", "version": "tau2"},
    description="tau2-bench retail: DB + communicate (+ NL assertions with a judge) reward"))
register_env(EnvSpec(
    id="hero_gym/Tau2Airline-v0", entry_point=_TAU, splits={"train": 30, "test": 20, "base": 50},
    default_split="test", default_max_turns=30, kwargs={"domain": "airline", "version": "tau2"},
    description="tau2-bench airline: DB + communicate (+ NL assertions with a judge) reward"))

# ReAct evaluated WebShop with a 15-step cap; we use it as the default budget.
_WEBSHOP = "hero_gym.envs.webshop.env:WebShopEnv"
register_env(EnvSpec(
    id="hero_gym/WebShop-v0", entry_point=_WEBSHOP, splits={"test": 500, "train": 6410, "all": 6910},
    default_split="test", default_max_turns=15, kwargs={"goals": "synthetic"},
    description="WebShop, 1,000 products, 6,910 synthetic goals (verl-agent/GiGPO split: test 0-499, train 500+)"))
register_env(EnvSpec(
    id="hero_gym/WebShopHuman-v0", entry_point=_WEBSHOP, splits={"test": 13, "eval": 0, "train": 0, "all": 13},
    default_split="test", default_max_turns=15, kwargs={"goals": "human"},
    description="WebShop, human-written goals (test 0-499, eval 500-1499, train 1500+ of the seed-233 shuffle)"))
