"""Reuse of attention key/value tensors across the turns of a conversation (opt-in for HFPolicy).

In a multi-turn rollout each request's prompt is the previous request's prompt + the generated ids + the env's
answer, so all but the new tail was already run through the model. On a CPU the re-read of a 4-5k token TauBench
prompt every turn dominates the wall time. :class:`PrefixKVCache` keeps, per conversation, the keys/values of the
ids a finished generation fed through the model; the next request whose ids start with them only runs its new tail.

The cache is dropped whenever any model parameter changes (in-place optimizer steps bump tensor versions), so a
trainer never samples from stale keys. Only models whose layers all use full attention are supported.
"""

from __future__ import annotations

from collections import OrderedDict

from hero_gym.extras import require_extra

require_extra("train", "torch", "transformers")

import torch  # noqa: E402


def supports_prefix_cache(model) -> bool:
    """True for decoder models whose every layer attends to the full context (no sliding windows, no states)."""
    cfg = model.config
    types = getattr(cfg, "layer_types", None)
    if types is not None and any(t != "full_attention" for t in types):
        return False
    return not (getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None))


def layer_kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (keys, values) tensors of every layer of a transformers cache, shape (batch, heads, length, dim)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))  # transformers < 4.56


def make_cache(layers: list[tuple[torch.Tensor, torch.Tensor]], config):
    """A DynamicCache holding the given per-layer keys/values."""
    from transformers import DynamicCache

    try:
        return DynamicCache(ddp_cache_data=layers, config=config)
    except TypeError:
        cache = DynamicCache()
        for i, (k, v) in enumerate(layers):
            cache.update(k, v, i)
        return cache


class PrefixKVCache:
    """An LRU store of per-conversation keys/values keyed by the token ids they encode, bounded in bytes."""

    def __init__(self, max_mb: float):
        if max_mb <= 0:
            raise ValueError(f"max_mb must be > 0, got {max_mb!r}")
        self.max_bytes = int(max_mb * 2**20)
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0
        self.reused_tokens = 0
        self._weights = None

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def check_weights(self, model) -> None:
        """Forget everything when any parameter was modified or moved since the last call."""
        stamp = tuple((p.data_ptr(), p._version) for p in model.parameters())
        if stamp != self._weights:
            self.clear()
            self._weights = stamp

    def lookup(self, ids: list[int]) -> tuple[tuple[int, ...] | None, int]:
        """The longest stored key that starts `ids`, and how many of its positions to reuse (at most len(ids)-1:
        the model must see at least one new token to produce logits)."""
        best = None
        for key in self.entries:
            if best is not None and len(key) <= len(best):
                continue
            if len(key) <= len(ids) and tuple(ids[:len(key)]) == key:
                best = key
        if best is None:
            self.misses += 1
            return None, 0
        self.entries.move_to_end(best)
        self.hits += 1
        used = min(len(best), len(ids) - 1)
        self.reused_tokens += used
        return best, used

    def get(self, key: tuple[int, ...], length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(k[:, :, :length], v[:, :, :length]) for k, v in self.entries[key]]

    def store(self, key: tuple[int, ...], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if size > self.max_bytes:
            return
        self.discard(key)
        self.entries[key] = layers
        self.bytes += size
        while self.bytes > self.max_bytes:
            self.discard(next(iter(self.entries)))

    def discard(self, key) -> None:
        layers = self.entries.pop(key, None)
        if layers is not None:
            self.bytes -= sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
