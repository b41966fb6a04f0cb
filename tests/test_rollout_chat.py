"""hero_gym.chat: template rendering helpers and the token ledger, on the tiny tokenizer and a plain ChatML one."""

import json

import pytest

from hero_gym import chat
from hero_gym.policies.models import tiny_tokenizer

# SmolLM2's template in spirit: plain ChatML, no tools argument, content concatenated as a string.
PLAIN_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
    "+ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture
def tok():
    return tiny_tokenizer()


@pytest.fixture
def plain():
    t = tiny_tokenizer()
    t.chat_template = PLAIN_CHATML
    return t


def test_end_of_turn_and_stop_ids(tok):
    assert chat.end_of_turn_text(tok) == "<|im_end|>\n"
    assert tok.convert_tokens_to_ids("<|im_end|>") in chat.stop_token_ids(tok)


def test_plain_template_gets_tools_folded_in(plain):
    assert not chat.supports_tools(plain)
    msgs = [{"role": "system", "content": "Policy."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "found"}]
    text = chat.render(plain, msgs, TOOLS, add_generation_prompt=True)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nPolicy.\n\nYou can call these functions:")
    assert json.dumps(TOOLS[0]) in system
    assert '<|im_start|>assistant\n{"name": "lookup", "arguments": {"q": 1}}<|im_end|>' in text
    assert "<|im_start|>user\nTool result:\nfound<|im_end|>" in text
    assert msgs[2]["content"] is None and "tool_calls" in msgs[2]  # the caller's messages are not modified


def test_render_needs_a_template_and_valid_messages(tok):
    bare = tiny_tokenizer()
    bare.chat_template = None
    with pytest.raises(chat.ChatTemplateError, match="no chat template"):
        chat.render(bare, [{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="role"):
        chat.render(tok, [{"content": "no role"}])


def test_ledger_turns_reproduce_the_rendered_conversation(tok):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "first"}]
    conv = chat.ConversationTokens(tok, msgs, TOOLS)
    assert conv.ids == chat.prompt_ids(tok, msgs, TOOLS)
    action = chat.encode(tok, "my answer") + [tok.convert_tokens_to_ids("<|im_end|>")]
    msgs2 = msgs + [{"role": "assistant", "content": "my answer"}, {"role": "user", "content": "second"}]
    obs = conv.add_turn(action, msgs2)
    assert tok.decode(obs) == "\n<|im_start|>user\nsecond<|im_end|>\n<|im_start|>assistant\n"
    cut = chat.encode(tok, "cut off")  # stopped by the length limit: the whole end-of-turn is the env's
    msgs3 = msgs2 + [{"role": "assistant", "content": "cut off"}, {"role": "user", "content": "bye"}]
    obs = conv.add_turn(cut, msgs3, done=True)
    assert tok.decode(obs) == "<|im_end|>\n<|im_start|>user\nbye<|im_end|>\n"
    assert tok.decode(conv.ids) == chat.render(tok, msgs3, TOOLS)
    assert conv.fallbacks == 0


def test_ledger_rejects_rewritten_history(tok):
    msgs = [{"role": "user", "content": "first"}]
    conv = chat.ConversationTokens(tok, msgs)
    with pytest.raises(ValueError, match="rewritten"):
        conv.add_turn([5], [{"role": "user", "content": "changed"}, {"role": "assistant", "content": "x"}])
