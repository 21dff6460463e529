"""A NetCDF export of a store slice, checked by the IOOS compliance checker's CF 1.10 suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr


def to_netcdf(ds: xr.Dataset, path: Path) -> Path:
    """``ds`` as NetCDF-4: attributes NetCDF cannot hold (JSON objects) written as JSON text,
    booleans as bytes with CF flags (what an analyst's ``to_netcdf`` export gives)."""
    ds = ds.copy()
    ds.attrs = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in ds.attrs.items()}
    flags = {}
    for name, var in ds.variables.items():  # the store's fill values and time units, no codecs
        var.encoding = {k: v for k, v in var.encoding.items() if k in ("_FillValue", "units", "calendar", "dtype")}
        if var.dtype.kind == "f":
            var.encoding.setdefault("_FillValue", None)  # none in the store: none in the file
        if var.dtype == bool:
            attrs = {**var.attrs, "flag_values": np.array([0, 1], "i1"), "flag_meanings": "false true"}
            flags[name] = xr.Variable(var.dims, var.values.astype("i1"), attrs)
    ds = ds.assign(flags)  # after the loop: assigning makes new variables, dropping encodings set later
    ds.to_netcdf(path, engine="netcdf4")
    return path


def cf_failures(path: Path, tolerated: tuple[str, ...] = ()) -> list[str]:
    """Every high- and medium-priority CF 1.10 check ``path`` fails, one line each, but those
    whose section starts with one of ``tolerated`` (each the caller's documented choice)."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite().load_all_available_checkers()
    report = path.with_suffix(".json")
    ComplianceChecker.run_checker(
        str(path), ["cf:1.10"], verbose=0, criteria="normal", output_filename=str(report), output_format="json"
    )
    result = json.loads(report.read_text())["cf:1.10"]
    return [
        f"{priority}: {item['name']}: {'; '.join(item['msgs'])}"
        for priority in ("high_priorities", "medium_priorities")
        for item in result.get(priority, [])
        if item["value"][0] < item["value"][1] and not item["name"].startswith(tolerated)
    ]
