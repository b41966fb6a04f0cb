"""A Policy backed by a Hugging Face transformers causal LM, with its own batched decoding loop.

Why not `model.generate`: it samples from the global torch RNG, so a request's output would depend on what else
is in the batch. Here each request gets its own random stream seeded by ``ChatRequest.seed``.

Batch and seed semantics:
* Requests are decoded in micro-batches of `batch_size` (grouped by prompt length), left-padded, with a KV cache.
* Sampling for a request draws uniforms from a private ``torch.Generator`` seeded with its seed (one draw per
  token, inverse-CDF on the CPU in float64), so the same prompt + seed + sampling parameters give the same tokens
  whatever the batch holds (up to floating-point differences between batch shapes, which only matter when a
  draw lands within ~1e-6 of a CDF boundary). ``seed=None`` draws a fresh seed.
* ``temperature <= 0`` is greedy decoding (argmax).
* ``logprobs`` are the model's log-probabilities of the sampled tokens at temperature 1 (the raw distribution,
  before temperature and top-p), the quantity a trainer recomputes in its forward pass.
* Decoding of a request stops at any end-of-turn token (EOS, ``<|im_end|>``, the model's generation-config EOS;
  the stop token is kept in ``token_ids`` and left out of ``text``; other special tokens stay in ``text``), when ``text`` comes to contain one of
  ``ChatRequest.stop`` (finish_reason "stop"; the stop string stays in the text), or after `max_new_tokens`
  (finish_reason "length").
* ``prefix_cache_mb > 0`` keeps each conversation's attention keys/values between calls, so a multi-turn rollout
  runs only each turn's new tokens (hero_gym.policies.kv_cache). Off by default; it is cleared whenever the
  weights change.
"""

from __future__ import annotations

import inspect
import os
import random

from hero_gym.extras import require_extra

require_extra("train", "torch", "transformers")

import torch  # noqa: E402

from hero_gym import chat
from hero_gym.policies.base import ChatRequest
from hero_gym.types import Generation


class ContextOverflow(ValueError):
    """The prompt no longer fits the model's context (its Generation has finish_reason "context_overflow")."""


class HFPolicy:
    """Policy over a transformers causal LM. `model` and `tokenizer` stay public so trainers can reuse them.

    Args:
        model_or_path: a loaded model, or a spec for :func:`hero_gym.policies.models.load_model`
            ("smollm2", "tiny", a folder, a hub id).
        tokenizer: required with a loaded model; with a spec it defaults to the model's own.
        device: where to put the model (default: leave it where it is).
        dtype: weights dtype when loading from a spec.
        batch_size: micro-batch size for decoding.
        name: label for records (default: the spec or the model's class name).
        prefix_cache_mb: > 0 keeps up to this many MB of attention keys/values per conversation so the next turn
            only runs its new tokens (see hero_gym.policies.kv_cache; off by default). Outputs match a full
            re-read up to floating-point rounding: within 1e-4 in fp32, but in bf16 log-probabilities moved by up
            to ~0.05 on SmolLM2 and sampled continuations can then diverge, so a seed reproduces its episode
            only under the same setting. Measured 1.6x faster on 3-turn WebShop episodes with SmolLM2.
    """

    def __init__(self, model_or_path, tokenizer=None, device=None, dtype=None, batch_size: int = 8, name=None,
                 prefix_cache_mb: float = 0):
        if isinstance(model_or_path, (str, os.PathLike)):
            from hero_gym.policies.models import load_model

            model, own_tok = load_model(str(model_or_path), device=device, dtype=dtype)
            tokenizer = tokenizer or own_tok
            name = name or str(model_or_path)
        else:
            model = model_or_path
            if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
                raise TypeError(f"model_or_path must be a transformers model or a model spec, got {type(model).__name__}")
            if tokenizer is None:
                raise ValueError("a tokenizer is required when passing a loaded model")
            if device is not None:
                model = model.to(device)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.name = name or type(model).__name__
        self.stop_ids = chat.stop_token_ids(tokenizer, model)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else next(iter(self.stop_ids), 0))
        self.max_context = getattr(model.config, "max_position_embeddings", None)
        self._seed_rng = random.Random()
        # transformers 5.x renamed `past_key_values` to `cache`; peft wrappers hide the signature, so ask the base.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        self._cache_kw = "cache" if "cache" in params and "past_key_values" not in params else "past_key_values"
        self.prefix_cache = None
        if prefix_cache_mb:
            from hero_gym.policies.kv_cache import PrefixKVCache, supports_prefix_cache

            if not supports_prefix_cache(base):
                raise ValueError(f"prefix_cache_mb needs a model with full attention in every layer; "
                                 f"{type(base).__name__} uses sliding windows or other layer types")
            self.prefix_cache = PrefixKVCache(prefix_cache_mb)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----- public API ---------------------------------------------------------------------------------------
    def prompt_ids(self, request: ChatRequest) -> list[int]:
        """The ids generation starts from: `prompt_token_ids` verbatim, else the rendered chat template."""
        if request.prompt_token_ids is not None:
            return [int(t) for t in request.prompt_token_ids]
        return chat.prompt_ids(self.tokenizer, request.messages, request.tools)

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        """One Generation per request, in order; a bad request gets ``error`` set, the others still run."""
        out: list[Generation | None] = [None] * len(requests)
        jobs = []
        vocab = self.model.config.vocab_size
        for i, req in enumerate(requests):
            try:
                ids = self.prompt_ids(req)
                if not ids:
                    raise ValueError("empty prompt")
                if min(ids) < 0 or max(ids) >= vocab:
                    raise ValueError(f"prompt token ids must lie in [0, {vocab})")
                budget = int(req.max_new_tokens)
                if budget < 1:
                    raise ValueError(f"max_new_tokens must be >= 1, got {req.max_new_tokens}")
                if self.max_context is not None:
                    if len(ids) >= self.max_context:
                        raise ContextOverflow(f"prompt of {len(ids)} tokens does not fit the model's context of "
                                         f"{self.max_context}")
                    budget = min(budget, self.max_context - len(ids))
                jobs.append((i, ids, budget, req))
            except Exception as e:  # one bad request must not sink the batch
                out[i] = Generation(text="", error=f"{type(e).__name__}: {e}",
                                    finish_reason="context_overflow" if isinstance(e, ContextOverflow) else "error")
        # Similar lengths share a micro-batch (less padding); outputs do not depend on batch composition.
        jobs.sort(key=lambda job: len(job[1]))
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start:start + self.batch_size]
            try:
                gens = self._decode(chunk)
            except Exception as e:
                gens = [Generation(text="", prompt_token_ids=ids, error=f"{type(e).__name__}: {e}",
                                   finish_reason="error") for _, ids, _, _ in chunk]
            for (i, *_), g in zip(chunk, gens):
                out[i] = g
        return out  # type: ignore[return-value]

    # ----- decoding -----------------------------------------------------------------------------------------
    def _pick(self, logits: torch.Tensor, req: ChatRequest, gen: torch.Generator | None) -> int:
        if gen is None:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.double() / float(req.temperature), dim=-1).cpu()
        if req.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < req.top_p  # always keeps the top token
            filtered = torch.zeros_like(probs)
            filtered[order[keep]] = sorted_p[keep]
            probs = filtered
        cdf = torch.cumsum(probs, 0)
        u = torch.rand(1, generator=gen, dtype=torch.float64) * cdf[-1]
        return int(min(torch.searchsorted(cdf, u).item(), probs.numel() - 1))

    @torch.inference_mode()
    def _decode(self, chunk) -> list[Generation]:
        device = self.device
        n = len(chunk)
        kv = self.prefix_cache
        if kv is not None:
            kv.check_weights(self.model)
        hits = [kv.lookup(ids) for _, ids, _, _ in chunk] if kv is not None else [(None, 0)] * n
        # Layout of the first forward: [reused keys, left-padded to width C] + [new ids, left-padded to width S].
        reuse = [c for _, c in hits]
        new = [len(ids) - c for (_, ids, _, _), c in zip(chunk, reuse)]
        C, S = max(reuse), max(new)
        input_ids = torch.full((n, S), self.pad_id, dtype=torch.long)
        attn = torch.zeros((n, C + S), dtype=torch.long)
        positions = torch.zeros((n, S), dtype=torch.long)
        for r, (_, ids, _, _) in enumerate(chunk):
            c, m = reuse[r], new[r]
            input_ids[r, S - m:] = torch.tensor(ids[c:], dtype=torch.long)
            attn[r, C - c:C] = 1
            attn[r, C + S - m:] = 1
            positions[r, S - m:] = torch.arange(c, c + m)
        input_ids, attn, positions = input_ids.to(device), attn.to(device), positions.to(device)
        first_kwargs = {"logits_to_keep": 1}
        if C > 0:
            first_kwargs[self._cache_kw] = self._reused_cache(hits, C)
        gens = []
        for _, _, _, req in chunk:
            if req.temperature is None or req.temperature <= 0:
                gens.append(None)
            else:
                seed = req.seed if req.seed is not None else self._seed_rng.getrandbits(63)
                gens.append(torch.Generator().manual_seed(int(seed) % (2**63)))
        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        finish: list[str | None] = [None] * n
        steps = max(b for _, _, b, _ in chunk)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model(input_ids=input_ids, attention_mask=attn, position_ids=positions, use_cache=True,
                             **first_kwargs)
            fed = 0  # decode steps run after the first forward (each fed one token per row)
            live = list(range(n))  # the chunk row behind each row of the batch still decoding
            for step in range(steps):
                logits = out.logits[:, -1, :].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                next_ids = []
                for b, r in enumerate(live):
                    _, _, budget, req = chunk[r]
                    tok = self._pick(logits[b], req, gens[r])
                    tokens[r].append(tok)
                    logps[r].append(float(logprobs[b, tok]))
                    next_ids.append(tok)
                    if tok in self.stop_ids:
                        finish[r] = "stop"
                    elif req.stop and self._hit_stop(tokens[r], req.stop):
                        finish[r] = "stop"
                    elif len(tokens[r]) >= budget:
                        finish[r] = "length"
                if all(f is not None for f in finish):
                    break
                cache = _out_cache(out)
                keep = [b for b, r in enumerate(live) if finish[r] is None]
                if len(keep) < len(live):
                    # Finished rows leave the batch: a decode step costs about its row count, and one long
                    # search action would otherwise make every row of the batch pay for its 50 steps.
                    if kv is not None:
                        self._keep(cache, chunk, hits, tokens, C, S, fed,
                                   [(b, r) for b, r in enumerate(live) if finish[r] is not None])
                    cache = self._select_rows(cache, keep)
                    index = torch.tensor(keep, device=attn.device)
                    attn, positions = attn.index_select(0, index), positions.index_select(0, index)
                    next_ids = [next_ids[b] for b in keep]
                    live = [live[b] for b in keep]
                step_ids = torch.tensor(next_ids, dtype=torch.long, device=device).unsqueeze(1)
                attn = torch.cat([attn, torch.ones((len(live), 1), dtype=torch.long, device=device)], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=step_ids, attention_mask=attn, position_ids=positions,
                                 use_cache=True, **{self._cache_kw: cache})
                fed += 1
            if kv is not None:
                self._keep(_out_cache(out), chunk, hits, tokens, C, S, fed, list(enumerate(live)))
        finally:
            if was_training:
                self.model.train()
        result = []
        for r, (_, ids, _, _) in enumerate(chunk):
            # The text is exactly the generated ids minus a final end-of-turn token (special tokens the model
            # wrote mid-message stay), so text and ids never disagree.
            body = tokens[r][:-1] if finish[r] == "stop" and tokens[r] and tokens[r][-1] in self.stop_ids else tokens[r]
            text = self.tokenizer.decode(body, skip_special_tokens=False)
            result.append(Generation(text=text, token_ids=tokens[r], logprobs=logps[r], prompt_token_ids=list(ids),
                                     finish_reason=finish[r] or "length"))
        return result

    def _reused_cache(self, hits, width: int):
        """A batch cache with each row's reused keys/values right-aligned in `width` positions."""
        from hero_gym.policies.kv_cache import make_cache

        rows = [self.prefix_cache.get(key, c) if key is not None else None for key, c in hits]
        template = next(r for r in rows if r is not None)
        layers = []
        for li, (k0, v0) in enumerate(template):
            k = k0.new_zeros((len(rows), k0.shape[1], width, k0.shape[3]))
            v = v0.new_zeros((len(rows), v0.shape[1], width, v0.shape[3]))
            for r, row in enumerate(rows):
                if row is not None:
                    c = row[li][0].shape[2]
                    k[r, :, width - c:] = row[li][0][0]
                    v[r, :, width - c:] = row[li][1][0]
            layers.append((k, v))
        return make_cache(layers, self.model.config)

    def _select_rows(self, cache, rows: list[int]):
        """The cache of the given batch rows only (in place where the cache class can do it: no copy of every layer)."""
        from hero_gym.policies.kv_cache import layer_kv, make_cache

        layers = layer_kv(cache)
        index = torch.tensor(rows, device=layers[0][0].device)
        if hasattr(cache, "batch_select_indices"):
            cache.batch_select_indices(index)
            return cache
        return make_cache([(k.index_select(0, index), v.index_select(0, index)) for k, v in layers], self.model.config)

    def _keep(self, cache, chunk, hits, tokens, C: int, S: int, fed: int, rows) -> None:
        """Store the keys/values of the ids each (batch row, chunk row) in `rows` fed through the model (prompt +
        generated so far); every row's cache has width C + S + fed."""
        from hero_gym.policies.kv_cache import layer_kv

        layers = layer_kv(cache)
        for b, r in rows:
            ids = chunk[r][1]
            c, m = hits[r][1], len(ids) - hits[r][1]
            k_fed = min(len(tokens[r]), fed)
            index = torch.cat([torch.arange(C - c, C), torch.arange(C + S - m, C + S + k_fed)]).to(layers[0][0].device)
            kept = [(k[b:b + 1].index_select(2, index), v[b:b + 1].index_select(2, index)) for k, v in layers]
            if hits[r][0] is not None:
                self.prefix_cache.discard(hits[r][0])  # superseded by the longer entry
            self.prefix_cache.store(tuple(ids) + tuple(tokens[r][:k_fed]), kept)

    def _hit_stop(self, ids: list[int], stops: list[str]) -> bool:
        tail = self.tokenizer.decode(ids[-64:], skip_special_tokens=False)
        return any(s and s in tail for s in stops)


def _out_cache(out):
    """A forward's key/value cache (transformers 5.x names it `cache`, earlier versions `past_key_values`)."""
    cache = getattr(out, "cache", None)
    return out.past_key_values if cache is None else cache
