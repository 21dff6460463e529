"""Which members a (init time, checkpoint) gets, and their deterministic seeds.

A member's seed is a hash of (run seed, init time, checkpoint id, perturbation index), so any
member can be regenerated on its own, anywhere, and re-running a work unit draws the same
noise. The two members of a +/- pair share an index and a seed. Member 0 of each checkpoint
is the unperturbed control when ``control`` is on (as in HENS).
"""

from __future__ import annotations

import hashlib

import numpy as np

from swarmcast.ops.perturbations.base import Member


def member_seed(run_seed: int, init_time: np.datetime64, checkpoint: str, index: int) -> int:
    """A 63-bit seed from (run seed, init time, checkpoint id, perturbation index)."""
    stamp = str(np.datetime64(init_time, "s"))
    digest = hashlib.sha256(f"{run_seed}|{stamp}|{checkpoint}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def member_pattern(pairs: int, *, control: bool = True) -> list[tuple[int, int]]:
    """(perturbation index, sign) of each member in store order: [control?] + (k, +1), (k, -1)."""
    if pairs < 0:
        raise ValueError(f"pairs must be >= 0, got {pairs}")
    pattern = [(0, 0)] if control else []
    for k in range(1, pairs + 1):
        pattern += [(k, 1), (k, -1)]
    if not pattern:
        raise ValueError("an ensemble needs a control member or at least one pair")
    return pattern


def plan_members(
    run_seed: int, init_time: np.datetime64, checkpoint: str, pairs: int, *, control: bool = True
) -> list[Member]:
    """[control?] + pairs x (+, -) members for one init time and checkpoint, in store order."""
    return [
        Member(index, sign, member_seed(run_seed, init_time, checkpoint, index))
        for index, sign in member_pattern(pairs, control=control)
    ]
