"""An Inspect AI evaluation of a hero-gym env (needs the inspect extra). Inspect's mock model stands in for a real
one here; with a real model: ``inspect eval hero_gym/integrations/inspect_tasks.py@hero_gym_task -T
env_id=hero_gym/WebShop-v0 --model openai/gpt-4o-mini``, then ``inspect view``.

    python examples/inspect_eval.py
"""

import tempfile

from inspect_ai import eval as inspect_eval
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from hero_gym.integrations.inspect_tasks import hero_gym_task

# The mock model answers every turn with the same search (usage set: no tokenizer download for counting).
reply = ModelOutput.from_content("mockllm/model", "search[womens sandals]")
reply.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
model = get_model("mockllm/model", custom_outputs=[reply] * 6)

with tempfile.TemporaryDirectory() as logs:
    (log,) = inspect_eval(hero_gym_task("hero_gym/WebShop-v0", tasks=[0, 1], max_turns=3), model=model,
                          log_dir=logs, display="none")
print(log.status, {f"{s.name}/{m}": v.value for s in log.results.scores for m, v in s.metrics.items()})
