"""Mergeable partial sums of every ensemble score, per latitude row (ARCHITECTURE.md, "Verification").

Every metric the ``score`` stage reports is a ratio of sums over points, init times and
members. So a block of the forecast (one variable, init time and lead; all members; any run
of latitude rows) is reduced to **sums over longitude per latitude row**, unweighted:

* ``mse``, ``variance``, ``crps``, ``outside``, ``best_member_mse``: (row,) sums of the
  ensemble-mean squared error, the unbiased member variance, the fair CRPS, the truth outside
  the members' range (0/1) and the closest member's squared error;
* ``persistence_mse``, ``persistence_mae``, ``climatology_mse``, ``climatology_mae``: (row,)
  the two reference forecasts;
* ``rank_counts``: (row, M + 1) how many points of the row have the truth at each rank;
* ``size_mse``, ``size_crps``: (row, draw) for each random sub-ensemble (its ensemble-mean
  squared error and its empirical CRPS);
* ``checkpoint_crps``, ``checkpoint_mse``, ``checkpoint_variance``: (row, checkpoint) the same
  over each checkpoint's members alone.

Sums of rows, init times and leads add, so a region, a latitude weighting or a subset of init
times is a weighted sum over a small array afterwards (``finish.finish_scores``), with no pass
over members; and a block split into row bands gives exactly the sums of the whole block,
which is what lets a scoring task bound its memory by splitting latitude. Rank ties are broken
by a generator seeded per (seed, init time, lead, row), so the split does not change a rank.

Angular power spectra need whole fields: ``SpectrumSums`` takes members in batches of whole
fields (sums of members' C_l, the members' sum field for the ensemble mean) and adds up the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from swarmcast.kernels import ensemble_scores as ks
from swarmcast.kernels.spectra import angular_power_spectrum

POINT_SUMS = (
    "mse",
    "variance",
    "crps",
    "outside",
    "best_member_mse",
    "persistence_mse",
    "persistence_mae",
    "climatology_mse",
    "climatology_mae",
)
"""Row sums with no extra dimension."""
CHECKPOINT_SUMS = ("checkpoint_crps", "checkpoint_mse", "checkpoint_variance")
SIZE_SUMS = ("size_mse", "size_crps")


@dataclass(frozen=True)
class MemberGroups:
    """Which members the per-checkpoint and sub-ensemble sums use, the same for every block.

    ``checkpoints``: per checkpoint label, the member indices it ran; ``draws``: one member
    index array per random sub-ensemble; ``draw_size``: the size of each draw.
    """

    members: int
    checkpoints: dict[str, np.ndarray]
    draws: tuple[np.ndarray, ...]

    @property
    def draw_size(self) -> np.ndarray:
        return np.array([len(d) for d in self.draws], dtype=np.int64)

    @classmethod
    def build(cls, checkpoint_of: Sequence[str], sizes: Sequence[int], bootstrap: int, seed: int) -> MemberGroups:
        """Sub-ensembles of each size in ``sizes``: ``bootstrap`` random draws without
        replacement (the whole ensemble once for size M), from a generator seeded by ``seed``."""
        labels = np.asarray([str(c) for c in checkpoint_of])
        m, rng = len(labels), np.random.default_rng(seed)
        draws = []
        for k in sizes:
            draws += [np.arange(m)] if k == m else [np.sort(rng.choice(m, k, replace=False)) for _ in range(bootstrap)]
        checkpoints = {c: np.flatnonzero(labels == c) for c in dict.fromkeys(labels.tolist())}
        return cls(m, checkpoints, tuple(draws))


def _ranks(x: np.ndarray, y: np.ndarray, rows: np.ndarray, seed: Sequence[int]) -> np.ndarray:
    """Rank 0..M of ``y`` (row, lon) among ``x`` (M, row, lon); ties broken uniformly by a
    generator per (``seed``..., global row index), so a row's ranks never depend on its band."""
    below = (x < y).sum(axis=0)
    ties = (x == y).sum(axis=0)
    if not ties.any():
        return below
    u = np.stack([np.random.default_rng([*seed, int(r)]).random(y.shape[-1]) for r in rows])
    return below + np.floor(u * (ties + 1)).astype(below.dtype)


def block_row_sums(
    x: np.ndarray,
    y: np.ndarray,
    y0: np.ndarray,
    climatology: np.ndarray,
    groups: MemberGroups,
    rows: np.ndarray,
    seed: Sequence[int],
) -> dict[str, np.ndarray]:
    """The row sums of one block (names in the module docstring), float64; ``rank_counts`` int64.

    ``x``: members (M, row, lon); ``y``: truth, ``y0``: truth at the init time (persistence),
    ``climatology``: (row, lon), all float64 in the variable's units; ``rows``: the global
    latitude index of each row; ``seed``: (seed, init time in minutes, lead) for rank ties.
    """
    if x.shape[0] != groups.members:
        raise ValueError(f"the block has {x.shape[0]} members, the groups {groups.members}")
    row = lambda f: f.sum(axis=-1)  # noqa: E731  (sum over longitude)
    mean, var = ks.ensemble_mean_variance(x)
    out = {
        "mse": row((mean - y) ** 2),
        "variance": row(var),
        "crps": row(ks.fair_crps(x, y)),
        "outside": row(ks.outside_range(x, y).astype(np.float64)),
        "best_member_mse": row(ks.best_member_squared_error(x, y)),
        "persistence_mse": row((y0 - y) ** 2),
        "persistence_mae": row(np.abs(y0 - y)),
        "climatology_mse": row((climatology - y) ** 2),
        "climatology_mae": row(np.abs(climatology - y)),
    }
    ranks = _ranks(x, y, rows, seed)  # (row, lon)
    m = groups.members
    out["rank_counts"] = np.stack([np.bincount(r, minlength=m + 1) for r in ranks]).astype(np.int64)
    size = [[], []]
    for idx in groups.draws:
        sub = x[idx]
        size[0].append(row((sub.mean(axis=0) - y) ** 2))
        size[1].append(row(ks.fair_crps(sub, y, fair=False)))
    out["size_mse"], out["size_crps"] = (np.stack(s, axis=-1) for s in size)
    per = [[], [], []]
    for idx in groups.checkpoints.values():
        sub = x[idx]
        sub_mean, sub_var = ks.ensemble_mean_variance(sub)
        per[0].append(row(ks.fair_crps(sub, y)))
        per[1].append(row((sub_mean - y) ** 2))
        per[2].append(row(sub_var))
    for name, parts in zip(CHECKPOINT_SUMS, per, strict=True):
        out[name] = np.stack(parts, axis=-1)
    return out


def row_sums_bytes(members: int, nlon: int) -> int:
    """Bytes ``block_row_sums`` needs per latitude row, with headroom: the float64 members (1x)
    and its temporaries, which tracemalloc measures at 3.1x the members' size (64 and 256
    members, 256 longitudes, two checkpoints, 10 draws per size); 6x in all leaves room for the
    allocator and larger sub-ensembles."""
    return 6 * members * nlon * 8


class SpectrumSums:
    """Sums of C_l over a block's members (fed in batches of whole fields), of the members' sum
    field (for the ensemble mean's C_l), and the truth's C_l: ``result() -> (3, degree)`` with
    rows members (mean over members), ensemble mean, truth."""

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = angular_power_spectrum(torch.as_tensor(truth, dtype=torch.float64)).numpy()
        self.power = np.zeros_like(self.truth)
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, batch: np.ndarray) -> None:
        """``batch``: (k, lat, lon) whole member fields, float64."""
        t = torch.as_tensor(batch, dtype=torch.float64)
        self.power += angular_power_spectrum(t).sum(dim=0).numpy()
        s = batch.sum(axis=0)
        self.total = s if self.total is None else self.total + s
        self.count += batch.shape[0]

    def result(self) -> np.ndarray:
        if self.total is None:
            raise ValueError("no members were added")
        mean = angular_power_spectrum(torch.as_tensor(self.total / self.count)).numpy()
        return np.stack([self.power / self.count, mean, self.truth])


def spectrum_bytes(nlat: int, nlon: int) -> int:
    """Peak bytes per member field of ``SpectrumSums.add`` (the field, its float64 copy and
    the transform's complex coefficients): an upper bound used to size member batches."""
    return 6 * nlat * nlon * 8


__all__ = [
    "CHECKPOINT_SUMS",
    "POINT_SUMS",
    "SIZE_SUMS",
    "MemberGroups",
    "SpectrumSums",
    "block_row_sums",
    "row_sums_bytes",
    "spectrum_bytes",
]
