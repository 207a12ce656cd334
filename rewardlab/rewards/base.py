"""The reward interface: a callable ``(prompts, completions, **columns) -> list[float]``.

Notation: N completions in a call; ``prompts[i]`` is the prompt completion ``i`` answers (a prompt
with k samples appears k times); ``columns`` are extra per-completion lists (e.g. ``reference``),
each of length N. Every reward returns N floats, one per completion.

    >>> def shorter_is_better(prompts, completions, **columns):
    ...     return [-float(len(c.split())) for c in completions]
    >>> shorter_is_better(["Hi"], ["one two"])
    [-2.0]

Classes here wrap such callables (names for logging, length checks); ``Reward`` is the protocol.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable


@runtime_checkable
class Reward(Protocol):
    """Anything called as ``reward(prompts, completions, **columns)`` returning N floats."""

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]: ...


RewardFn = Callable[..., list]


def check_output(name: str, values, n: int) -> list[float]:
    """``values`` as a list of N floats, or a ValueError naming the reward that returned something else."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as e:
        raise ValueError(f"reward {name!r} must return a sequence of numbers, got {type(values).__name__}: {e}") from None
    if len(out) != n:
        raise ValueError(f"reward {name!r} returned {len(out)} values for {n} completions")
    return out


def check_inputs(prompts: Sequence, completions: Sequence, columns: dict) -> int:
    """N, after checking that prompts, completions and every column have the same length."""
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"{len(prompts)} prompts but {n} completions")
    for key, col in columns.items():
        if col is not None and len(col) != n:
            raise ValueError(f"column {key!r} has {len(col)} values for {n} completions")
    return n


def reward_name(reward) -> str:
    """A short name for logs: ``reward.name`` if set, else the function's or class's name."""
    return getattr(reward, "name", None) or getattr(reward, "__name__", None) or type(reward).__name__
