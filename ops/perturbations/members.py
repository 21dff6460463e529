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


def plan_members(
    run_seed: int, init_time: np.datetime64, checkpoint: str, pairs: int, *, control: bool = True
) -> list[Member]:
    """[control?] + pairs x (+, -) members for one init time and checkpoint, in store order."""
    if pairs < 0:
        raise ValueError(f"pairs must be >= 0, got {pairs}")
    members = [Member(0, 0, member_seed(run_seed, init_time, checkpoint, 0))] if control else []
    for k in range(1, pairs + 1):
        seed = member_seed(run_seed, init_time, checkpoint, k)
        members += [Member(k, 1, seed), Member(k, -1, seed)]
    if not members:
        raise ValueError("an ensemble needs a control member or at least one pair")
    return members
