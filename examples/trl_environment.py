"""The TRL adapter without training: the environment class GRPOTrainer would create, its tools, and an episode
played through them (needs the trl extra). A real run passes ``environment_factory=Env`` and
``train_dataset=task_dataset(...)`` to ``trl.GRPOTrainer``.

    python examples/trl_environment.py
"""

from transformers.utils import get_json_schema

from hero_gym.integrations.trl import environment_factory, task_dataset

Env = environment_factory("hero_gym/Tau2Retail-v0", max_turns=10)
env = Env()
print("tools:", [get_json_schema(getattr(env, n))["function"]["name"] for n in ("get_order_details", "send_message_to_customer")], "...")
print(task_dataset("hero_gym/Tau2Retail-v0", tasks=[0, 1], system_prompt=False))

first = env.reset(task_index=1, seed=0)
print("customer:", first)
print("tool:", env.find_user_id_by_email(email="nope@example.com"))
print("customer:", env.send_message_to_customer(message="Could you give me your order id?"))
print("reward so far (episode unfinished):", env.get_reward())
