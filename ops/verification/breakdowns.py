"""Scores broken down by init time and by checkpoint, and the two reference forecasts every
score is read against (ARCHITECTURE.md, "Verification").

The ``score`` stage's headline scores are means over init times and all members. Two questions
they hide: is one init date (a regime) or one checkpoint (a model that cannot carry
perturbations) responsible, and how sure are we of a mean over a few dates? So, per variable,
region and lead, the scorer also keeps

* per init time the area means of the fair CRPS, the ensemble-mean squared error and the member
  variance (``crps_per_init``, ``mse_per_init``, ``variance_per_init``): the report bootstraps
  over init dates from them for confidence intervals, and compares two runs date by date;
* per checkpoint the same over its own members and all init times (``crps_per_checkpoint``,
  ``rmse_per_checkpoint``, ``spread_per_checkpoint``);
* the **persistence** forecast (the truth at the init time, kept for every lead) and the
  **climatology** forecast (the truth store's mean over all its times, one field per
  variable), as RMSE and CRPS (the CRPS of a single-valued forecast is its mean absolute error):
  ``persistence_rmse``, ``persistence_crps``, ``climatology_rmse``, ``climatology_crps``.

Blocks left out (truth not finite) are NaN in the per-init arrays and out of every mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from swarmcast.kernels import ensemble_scores as ks


class Breakdowns:
    """Area-weighted sums per (region, lead) and per init time or checkpoint, fed one block at a time.

    ``weights``: (region, lat) row weights; ``checkpoint_of``: the checkpoint label of each member.
    """

    PER_INIT = ("crps", "mse", "variance")
    BASELINES = ("persistence_mse", "persistence_mae", "climatology_mse", "climatology_mae")

    def __init__(self, weights: np.ndarray, n_init: int, n_lead: int, checkpoint_of: Sequence[str]) -> None:
        self.weights = weights
        self.labels = list(dict.fromkeys(str(c) for c in checkpoint_of))
        self.members = [np.flatnonzero(np.asarray(checkpoint_of) == c) for c in self.labels]
        n_region = weights.shape[0]
        self.per_init = {k: np.full((n_region, n_lead, n_init), np.nan) for k in self.PER_INIT}
        self.per_checkpoint = {k: np.zeros((n_region, n_lead, len(self.labels))) for k in self.PER_INIT}
        self.baselines = {k: np.zeros((n_region, n_lead)) for k in self.BASELINES}
        self.norm = np.zeros((n_region, n_lead))

    def _mean(self, field: np.ndarray) -> np.ndarray:
        """Area mean over (lat, lon) of ``field`` per region: (region,)."""
        return np.einsum("rl,lk->r", self.weights, field) / (self.weights.sum(axis=1) * field.shape[-1])

    def add(self, i: int, j: int, x: np.ndarray, y: np.ndarray, y0: np.ndarray, climatology: np.ndarray) -> None:
        """Init ``i``, lead ``j``: members ``x`` (M, lat, lon), truth ``y`` and the truth at the
        init time ``y0`` (lat, lon), the climatology field (lat, lon); float64."""
        mean, var = ks.ensemble_mean_variance(x)
        fields = {"crps": ks.fair_crps(x, y), "mse": (mean - y) ** 2, "variance": var}
        for k, f in fields.items():
            self.per_init[k][:, j, i] = self._mean(f)
        for c, idx in enumerate(self.members):
            sub = x[idx]
            sub_mean, sub_var = ks.ensemble_mean_variance(sub)
            self.per_checkpoint["crps"][:, j, c] += self._mean(ks.fair_crps(sub, y))
            self.per_checkpoint["mse"][:, j, c] += self._mean((sub_mean - y) ** 2)
            self.per_checkpoint["variance"][:, j, c] += self._mean(sub_var)
        for name, ref in (("persistence", y0), ("climatology", climatology)):
            self.baselines[f"{name}_mse"][:, j] += self._mean((ref - y) ** 2)
            self.baselines[f"{name}_mae"][:, j] += self._mean(np.abs(ref - y))
        self.norm[:, j] += 1

    def result(self) -> dict[str, np.ndarray]:
        """The arrays the scores store keeps (names as in the module docstring)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            n, nc = self.norm, self.norm[..., None]
            return {
                **{f"{k}_per_init": v for k, v in self.per_init.items()},
                "crps_per_checkpoint": self.per_checkpoint["crps"] / nc,
                "rmse_per_checkpoint": np.sqrt(self.per_checkpoint["mse"] / nc),
                "spread_per_checkpoint": np.sqrt(self.per_checkpoint["variance"] / nc),
                "persistence_rmse": np.sqrt(self.baselines["persistence_mse"] / n),
                "persistence_crps": self.baselines["persistence_mae"] / n,
                "climatology_rmse": np.sqrt(self.baselines["climatology_mse"] / n),
                "climatology_crps": self.baselines["climatology_mae"] / n,
            }


__all__ = ["Breakdowns"]
