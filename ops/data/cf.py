"""CF metadata every swarmcast store shares: coordinate attributes, squared units, and paths
written into outputs without the machine that made them.

What a CF checker reads (``tests/ops/test_cf_metadata.py`` runs the IOOS compliance checker on
NetCDF exports of each store): ``units`` that UDUNITS parses (or none where a variable mixes
several, e.g. a score stacked over variables, whose ``units`` coordinate gives each), a
``standard_name`` only where the CF table has one that fits, ``axis`` on the grid coordinates.
"""

from __future__ import annotations

import re

LAT_ATTRS = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"}
LON_ATTRS = {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"}
INIT_TIME_ATTRS = {"standard_name": "forecast_reference_time", "long_name": "initial time of the forecast"}
LEAD_TIME_ATTRS = {"standard_name": "forecast_period", "long_name": "lead time since the initial time"}
VALID_TIME_ATTRS = {"standard_name": "time", "long_name": "time the forecast is valid at"}

NO_FILL = {"_FillValue": None}
"""Encoding of grid coordinates: CF forbids a fill value on a coordinate variable, and xarray
gives every float variable one unless told not to."""

MEMBER_ATTRS: dict[str, dict[str, str]] = {
    "member": {"standard_name": "realization", "long_name": "ensemble member", "units": "1"},
    "checkpoint": {"long_name": "model checkpoint the member was run with"},
    "perturbation": {
        "long_name": "perturbation index within the checkpoint",
        "comment": "0 is the unperturbed control; k > 0 is the k-th perturbation, run with both signs",
    },
    "sign": {
        "long_name": "sign the perturbation was added with",
        "comment": "+1 or -1 for the two members of a pair; 0 for the control",
    },
    "seed": {"long_name": "random seed the member's perturbation was drawn with"},
}

_TOKEN = re.compile(r"^(?P<base>[A-Za-z]+)(?P<power>-?\d+)?$")


def squared_units(units: str) -> str:
    """UDUNITS units of a squared quantity: ``"m s-1"`` -> ``"m2 s-2"``, ``"1"`` -> ``"1"``;
    units it cannot split into plain powers become ``"(units)^2"``."""
    if units.strip() in ("", "1"):
        return "1"
    out = []
    for token in units.split():
        m = _TOKEN.match(token)
        if m is None:
            return f"({units})^2"
        out.append(f"{m['base']}{2 * int(m['power'] or 1)}")
    return " ".join(out)


def portable_path(given: str) -> str:
    """How an output names a store it was made from: a URL or a path relative to the pipeline as
    given; an absolute local path only by its last component, so no output carries the folder
    layout of the machine that made it."""
    if "://" in given or not given.startswith("/"):
        return given
    return given.rstrip("/").rsplit("/", 1)[-1]


__all__ = [
    "INIT_TIME_ATTRS",
    "LAT_ATTRS",
    "LEAD_TIME_ATTRS",
    "LON_ATTRS",
    "MEMBER_ATTRS",
    "NO_FILL",
    "VALID_TIME_ATTRS",
    "portable_path",
    "squared_units",
]
