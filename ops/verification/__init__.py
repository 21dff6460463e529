"""Verification: lazy xarray scores over an ensemble store (``metrics``), the streaming scorer
behind the ``score`` stage (``scoring``) and the HTML/PNG report (``report``).

The notebook API is re-exported here, so ``from swarmcast.ops import verification as ver``
gives ``ver.open_ensemble``, ``ver.align_truth``, ``ver.crps``, ``ver.region_mean`` and the rest.
"""

from swarmcast.ops.verification.metrics import (
    MEMBER,
    REGIONS,
    IncompleteEnsembleError,
    align_truth,
    best_member_squared_error,
    crps,
    extreme_forecast_index,
    open_ensemble,
    outside_range,
    region_mean,
    region_row_weights,
    truth_rank,
    weighted_rank_histogram,
)

__all__ = [
    "MEMBER",
    "REGIONS",
    "IncompleteEnsembleError",
    "align_truth",
    "best_member_squared_error",
    "crps",
    "extreme_forecast_index",
    "open_ensemble",
    "outside_range",
    "region_mean",
    "region_row_weights",
    "truth_rank",
    "weighted_rank_histogram",
]
