"""A Policy over a vLLM engine (optional extra ``hero-gym[vllm]``, CUDA only; imported only when constructed).

Prompts go in as token ids (``prompt_token_ids`` when the rollout gives them, otherwise the rendered chat
template), so the same token-exact bookkeeping as HFPolicy applies; token ids and the log-probabilities of the
sampled tokens come back from vLLM's outputs. vLLM's default logprobs are the model's raw distribution, the same
convention as HFPolicy. Seeds are per request (``SamplingParams.seed``).

Trainers keep the engine's weights in sync after each update with :meth:`VLLMPolicy.update_weights`.
"""

from __future__ import annotations

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
        **engine_kwargs: passed to ``vllm.LLM`` (e.g. gpu_memory_utilization=0.5, max_model_len=16384, dtype="bfloat16").
    """

    def __init__(self, model: str, tensor_parallel_size: int = 1, name: str | None = None, **engine_kwargs):
        vllm = _import_vllm()
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.name = name or f"vllm:{model}"

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
                results = self.llm.generate(prompts, params, use_tqdm=False)
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
        adapters first). The prefix cache is reset because cached KV blocks were computed with the old weights.
        With vLLM's V1 engine in multiprocess mode, ``LLM.apply_model`` ships the function to the workers, which
        needs ``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` (or ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` to keep the engine
        in this process, as TRL's colocate mode does). Not exercised on this project's CPU machines.
        """
        items = list(state_dict.items())
        if hasattr(self.llm, "apply_model"):
            self.llm.apply_model(lambda model: model.load_weights(items))
        else:  # older engines expose the driver worker's model directly
            runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
            runner.model.load_weights(items)
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()
