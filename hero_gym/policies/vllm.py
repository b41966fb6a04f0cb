"""A Policy over a vLLM engine (optional extra ``hero-gym[vllm]``, CUDA only; imported only when constructed).

Prompts go in as token ids (``prompt_token_ids`` when the rollout gives them, otherwise the rendered chat
template), so the same token-exact bookkeeping as HFPolicy applies; token ids and the log-probabilities of the
sampled tokens come back from vLLM's outputs. vLLM's default logprobs are the model's raw distribution, the same
convention as HFPolicy. Seeds are per request (``SamplingParams.seed``).

Trainers keep the engine's weights in sync after each update (hero_gym.agents.vllm_sync): full weights with
:meth:`VLLMPolicy.update_weights`, or, for LoRA training, either merged weights through the same call or the adapter
itself with :meth:`VLLMPolicy.set_lora` (the engine is then built with ``lora_rank`` so it accepts adapters).

Placement: by default the engine shares the trainer's GPU(s) (``gpu_memory_utilization`` is its share). With
``devices="1,2"`` the engine's worker processes are started with ``CUDA_VISIBLE_DEVICES=1,2``, i.e. on GPUs of their
own; the variable is set only while the engine starts, since the workers are separate processes that read it then
(the trainer's CUDA context is already bound to its own device). Everything here is written against vLLM's
documented offline API (``LLM``, ``SamplingParams``, ``LLM.apply_model``, ``LoRARequest``) and tested with a stand-in
module: vLLM is not installed on this project's machines.
"""

from __future__ import annotations

import contextlib
import os

from hero_gym import chat
from hero_gym.policies.base import ChatRequest
from hero_gym.types import Generation

INSTALL_HINT = "pip install 'hero-gym[vllm]' (vLLM needs a CUDA GPU; on CPU use HFPolicy)"


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"VLLMPolicy needs vLLM, which is not installed ({e}); {INSTALL_HINT}") from None
    return vllm


class VLLMPolicy:
    """Policy backed by ``vllm.LLM``.

    Args:
        model: a model folder or hub id vLLM can load.
        tensor_parallel_size: GPUs per engine.
        lora_rank: build the engine for LoRA adapters up to this rank (then :meth:`set_lora` selects one).
        devices: GPUs of the engine's own as CUDA_VISIBLE_DEVICES reads them ("1" or "1,2"); None = the current ones.
        **engine_kwargs: passed to ``vllm.LLM`` (e.g. gpu_memory_utilization=0.5, max_model_len=16384, dtype="bfloat16").
    """

    def __init__(self, model: str, tensor_parallel_size: int = 1, name: str | None = None, *,
                 lora_rank: int | None = None, devices: str | None = None, **engine_kwargs):
        vllm = _import_vllm()
        self._vllm = vllm
        if lora_rank is not None:
            # vLLM serves adapters only when built for them; one adapter at a time (the trainer's latest).
            engine_kwargs = {"enable_lora": True, "max_lora_rank": int(lora_rank), "max_loras": 1, **engine_kwargs}
        with _visible_devices(devices):
            self.llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.name = name or f"vllm:{model}"
        self.lora_request = None
        self._lora_version = 0
        self._lora_enabled = bool(engine_kwargs.get("enable_lora"))

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        """One Generation per request, in order (bad requests get ``error``; the rest run as one engine batch)."""
        from vllm import SamplingParams

        out: list[Generation | None] = [None] * len(requests)
        prompts, params, where = [], [], []
        for i, r in enumerate(requests):
            try:
                ids = list(r.prompt_token_ids) if r.prompt_token_ids is not None else \
                    chat.prompt_ids(self.tokenizer, r.messages, r.tools)
                params.append(SamplingParams(
                    n=1, temperature=max(0.0, float(r.temperature)), top_p=float(r.top_p),
                    max_tokens=int(r.max_new_tokens), seed=r.seed, stop=r.stop or None, logprobs=0,
                    skip_special_tokens=False,
                ))
                prompts.append({"prompt_token_ids": ids})
                where.append(i)
            except Exception as e:
                out[i] = Generation(text="", error=f"{type(e).__name__}: {e}", finish_reason="error")
        if prompts:
            try:
                extra = {"lora_request": self.lora_request} if self.lora_request is not None else {}
                results = self.llm.generate(prompts, params, use_tqdm=False, **extra)
            except Exception as e:
                results = [e] * len(prompts)
            for i, res, prompt in zip(where, results, prompts):
                out[i] = self._to_generation(res, prompt["prompt_token_ids"])
        return out  # type: ignore[return-value]

    @staticmethod
    def _to_generation(res, prompt_ids) -> Generation:
        if isinstance(res, Exception):
            return Generation(text="", prompt_token_ids=prompt_ids, error=f"{type(res).__name__}: {res}",
                              finish_reason="error")
        o = res.outputs[0]
        ids = list(o.token_ids)
        logprobs = None
        if o.logprobs is not None:
            # one dict per position: token id -> Logprob; the sampled token is always present with logprobs=0
            logprobs = [float(step[t].logprob) for step, t in zip(o.logprobs, ids)]
        return Generation(text=o.text, token_ids=ids, logprobs=logprobs, prompt_token_ids=list(prompt_ids),
                          finish_reason=o.finish_reason or "stop")

    def update_weights(self, state_dict) -> None:
        """Load new weights into the running engine (a trainer calls this after each optimizer step).

        `state_dict` maps Hugging Face parameter names to tensors (e.g. ``model.state_dict()``; merge LoRA
        adapters first), or is an iterable of (name, tensor) pairs, consumed chunk by chunk. The prefix cache is reset because cached KV blocks were computed with the old weights.
        With vLLM's V1 engine in multiprocess mode, ``LLM.apply_model`` ships the function to the workers, which
        needs ``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` (or ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` to keep the engine
        in this process, as TRL's colocate mode does). Not exercised on this project's CPU machines.
        """
        items = state_dict.items() if hasattr(state_dict, "items") else state_dict
        for chunk in _chunks(items, self.chunk_bytes):
            if hasattr(self.llm, "apply_model"):
                self.llm.apply_model(lambda model, chunk=chunk: model.load_weights(chunk))
            else:  # older engines expose the driver worker's model directly
                runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
                runner.model.load_weights(chunk)
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()

    # Weights travel in chunks of about this many bytes: a generator of merged LoRA weights then never needs a
    # second copy of the whole model (vLLM's load_weights maps each name on its own, so any split is valid).
    chunk_bytes = 2**30

    def set_lora(self, adapter_dir: str, name: str = "trainer") -> None:
        """Generate with the LoRA adapter saved (``save_pretrained``) in `adapter_dir` from now on.

        Each call gets a new integer id: vLLM caches adapters by id, so reusing one would keep the old weights.
        The engine must have been built with ``lora_rank``. The prefix cache is reset (its KV came from the old
        adapter)."""
        if not self._lora_enabled:
            raise RuntimeError("this engine was built without LoRA support: pass lora_rank when creating it")
        from vllm.lora.request import LoRARequest

        self._lora_version += 1
        self.lora_request = LoRARequest(f"{name}-{self._lora_version}", self._lora_version, str(adapter_dir))
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()


def _chunks(items, limit: int):
    """Lists of (name, tensor) whose sizes add up to about `limit` bytes (at least one pair each)."""
    chunk, size = [], 0
    for name, t in items:
        chunk.append((name, t))
        size += t.numel() * t.element_size() if hasattr(t, "element_size") else 0
        if size >= limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


@contextlib.contextmanager
def _visible_devices(devices: str | None):
    """CUDA_VISIBLE_DEVICES = `devices` while the block runs (None: unchanged)."""
    if devices is None:
        yield
        return
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(devices)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old
