"""The EMA teacher update, in fp32 or in bf16 with stochastic rounding.

teacher <- (1 - r) * teacher + r * student, parameter by parameter, after every optimiser step. A bf16 teacher
(``teacher="ema-bf16"``) halves the copy's memory, but bf16 keeps 8 significant bits: with r = 0.05 and a student
that moved by less than ~80 bf16 steps from the teacher, round-to-nearest would put the teacher back where it was,
so it would stop following the student once training settles. The update is therefore computed in fp32 and
rounded to bf16 *stochastically* (up with probability equal to the fraction past the lower bf16 neighbour), which
is unbiased: on average the teacher moves exactly r of the way, however small the step.

The rounding noise comes from a generator seeded by the caller (run seed and step), never from the global torch
RNG, so a resumed run draws the same roundings and its training RNG stream is untouched.
"""

from __future__ import annotations

import torch

from hero_gym.agents.fsdp import local


def stochastic_round_to_bf16(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """`x` (fp32) rounded to bf16, up or down at random in proportion to the distance: E[result] = x.

    bf16 is the top 16 bits of an fp32, so adding a uniform random 16-bit integer to the fp32 bit pattern and
    truncating the low 16 bits rounds up with exactly the probability of the truncated fraction.
    """
    x = x.float().contiguous()
    bits = x.view(torch.int32)
    noise = torch.randint(0, 1 << 16, bits.shape, dtype=torch.int32, device=x.device, generator=generator)
    rounded = ((bits + noise) & -65536).view(torch.float32)  # -65536 = 0xFFFF0000 as int32
    # inf / nan must stay what they are (adding noise to their bit pattern could turn inf into nan)
    rounded = torch.where(torch.isfinite(x), rounded, x)
    return rounded.to(torch.bfloat16)


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, rate: float,
               generator: torch.Generator | None = None) -> None:
    """teacher <- (1 - rate) * teacher + rate * student, parameter by parameter.

    fp32 teacher parameters are updated in place with ``lerp_``; bf16 ones get the update computed in fp32 and
    stochastically rounded (`generator` supplies the noise; see the module docstring).
    """
    for t, s in zip(teacher.parameters(), student.parameters()):
        # fsdp: both are DTensors sharded alike; the update is elementwise, so each rank updates its own shard
        t, s = local(t), local(s)
        if t.dtype == torch.bfloat16:
            mixed = t.float().lerp_(s.detach().float(), rate)
            t.copy_(stochastic_round_to_bf16(mixed, generator))
        else:
            t.lerp_(s.detach().to(t.dtype), rate)


def rounding_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of step `step`'s stochastic roundings: the same on every rank and on a resumed run."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + int(step) * 7_919 + 17) % (2**63))
    return g
