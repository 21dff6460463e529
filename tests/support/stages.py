"""Small stage configs the pipeline tests share."""

from __future__ import annotations

SMALL_HINDCAST = {
    "kind": "hindcast",
    "data": "data.zarr",
    "checkpoints": "checkpoints",
    "output": "hindcast.zarr",
    "init_times": {"times": ["2001-01-01T18", "2001-01-02T00", "2001-01-02T06"]},
    "lead_hours": 12,
    "perturbation": {"kind": "bred-vector", "pairs": 2, "seed_channels": ["h"]},
    "actors": {"cpus": 0.5},
}
"""Three init dates of the session's shallow-water store, 12 h, two checkpoints x 5 members."""
