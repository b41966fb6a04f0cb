"""A tau policy whose episodes cover every filter of the viewer's run page (not a test module itself).

By task index mod 4: 0 the scripted oracle (success), 1 a call to a tool that does not exist every turn (invalid
actions, then the turn budget), 2 a backend failure (an error episode), 3 the same question to the user every turn.
Used as ``--policy viewer_agent:make`` (the tests folder is on sys.path under pytest).
"""

from __future__ import annotations

from hero_gym.types import Generation

INVALID = '{"name": "no_such_tool", "arguments": {}}'
QUESTION = "Could you tell me the email address on your account?"


class MixedPolicy:
    name = "mixed"

    def __init__(self):
        self._oracle = None

    def generate(self, requests):
        out = []
        for r in requests:
            kind = r.context["task_index"] % 4
            if kind == 0:
                if self._oracle is None:
                    from hero_gym.policies.scripted import load_policy

                    self._oracle = load_policy("oracle", env_id=r.context["env_id"])
                out += self._oracle.generate([r])
            elif kind == 1:
                out.append(Generation(text=INVALID))
            elif kind == 2:
                out.append(Generation(text="", error="simulated backend failure", finish_reason="error"))
            else:
                out.append(Generation(text=QUESTION))
        return out


def make(**_):
    return MixedPolicy()
