"""chat's direct template rendering must give exactly what apply_chat_template gives, and step aside otherwise."""

import random

import pytest

from hero_gym import chat
from hero_gym.policies.models import default_model_path, tiny_tokenizer

PLAIN_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
    "+ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Uses a special token from the tokenizer's map, which the direct call must pass like apply_chat_template does.
WITH_EOS = "{% for m in messages %}{{ m['role'] + ':' + m['content'] + eos_token }}{% endfor %}" \
           "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}"
# Uses the globals the template environment provides (the direct call hands over a flat copy of them).
WITH_GLOBALS = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}" \
               "{{ m['role'] }}{{ ns.n }}{% for i in range(2) %}.{% endfor %}{{ m['content'] }}{% endfor %}" \
               "{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}"
RAISING = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('the first message must be the user') }}" \
          "{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"


def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_path())


def _tokenizers():
    plain, eos, glob = tiny_tokenizer(), tiny_tokenizer(), tiny_tokenizer()
    plain.chat_template, eos.chat_template, glob.chat_template = PLAIN_CHATML, WITH_EOS, WITH_GLOBALS
    return {"tiny": tiny_tokenizer(), "plain": plain, "eos": eos, "globals": glob, "smollm2": _smollm2_tokenizer()}


def _conversations(seed=0, n=40):
    rng = random.Random(seed)
    words = ["search[red shoes]", "click[b0123]", "Instruction: [SEP] i need a blue dress", " spaces ", "\n", "é"]
    for i in range(n):
        msgs = [{"role": "system", "content": "You shop."}] if i % 2 else []
        for t in range(rng.randint(1, 4)):
            msgs.append({"role": "user", "content": " ".join(rng.choices(words, k=rng.randint(0, 6)))})
            if t % 2 or rng.random() < 0.5:
                msgs.append({"role": "assistant", "content": rng.choice(words)})
        yield msgs


@pytest.mark.parametrize("name", ["tiny", "plain", "eos", "globals", "smollm2"])
def test_direct_rendering_equals_apply_chat_template(name):
    tok = _tokenizers()[name]
    fast = chat._fast_renderer(tok)
    assert fast is not None
    fast.to_verify = 0  # compare every render here, not only the ones the renderer checks itself
    for msgs in _conversations():
        for gen in (False, True):
            want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            assert fast.render([msgs], gen) == [want]
            assert chat.render(tok, msgs, add_generation_prompt=gen) == want
    assert fast.enabled


def test_messages_that_need_preparation_take_the_slow_path():
    tok = tiny_tokenizer()
    fast = chat._fast_renderer(tok)
    for msgs in ([{"role": "user", "content": None}], [{"role": "user", "content": "a", "reasoning": "b"}],
                 [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}],
                 [{"role": "user", "content": [{"type": "text", "text": "a"}]}]):
        assert fast.render([msgs], False) is None
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    msgs = [{"role": "user", "content": "hi"}]
    assert chat.render(tok, msgs, tools) == tok.apply_chat_template(msgs, tools=tools, tokenize=False)


def test_a_mismatch_turns_the_direct_path_off_and_returns_the_true_text():
    tok = tiny_tokenizer()
    fast = chat._fast_renderer(tok)

    fast._render = lambda conv, add_generation_prompt: "not what the template says"
    msgs = [{"role": "user", "content": "hi"}]
    want = tok.apply_chat_template(msgs, tokenize=False)
    assert chat.render(tok, msgs) == want
    assert not fast.enabled
    assert chat.render(tok, msgs) == want  # from now on apply_chat_template itself


def test_a_template_set_after_the_first_render_is_used():
    tok = tiny_tokenizer()
    msgs = [{"role": "user", "content": "hi"}]
    chat.render(tok, msgs)
    chat._fast_renderer(tok).to_verify = 0  # so the verification cannot mask a stale compiled template
    tok.chat_template = WITH_EOS
    assert chat.render(tok, msgs) == "user:hi" + tok.eos_token


def test_a_template_that_raises_gives_transformers_error_and_keeps_the_direct_path():
    tok = tiny_tokenizer()
    tok.chat_template = RAISING
    bad = [{"role": "assistant", "content": "x"}]
    with pytest.raises(Exception) as want:
        tok.apply_chat_template(bad, tokenize=False)
    with pytest.raises(type(want.value), match="the first message must be the user"):
        chat.render(tok, bad)
    fast = chat._fast_renderer(tok)
    assert fast.enabled  # an error about this input says nothing about the template's other renders
    fast.to_verify = 0
    assert fast.render([[{"role": "user", "content": "ok"}]], False) == ["ok"]
