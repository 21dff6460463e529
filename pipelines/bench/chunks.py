"""``swarmcast bench chunks``: what tiling the ensemble store's inner chunks costs and saves.

Two stores of the same members are written through the hindcast's own writer
(``UnitWriter``): one tiled as the hindcast tiles by default (``tiles``; ARCHITECTURE.md,
"Chunks for fields and for points") and one untiled (one map per inner chunk, the layout before
tiling). Each is read the ways analysts read an ensemble:

* ``point_fraction``: bytes zarr fetches for one grid point over every init time, member and
  lead, over the variable's bytes on disk (shard indexes included), counted at the store;
* ``field_s``: a whole-field reduction, the ensemble mean and standard deviation of every init
  time and lead, through ``xr.open_dataset(engine="swarmcast", chunks={})`` and dask threads;
* ``lead_map_s``: the ensemble mean at one lead for every init time (a map at one lead);
* ``field_s_open_zarr``: the whole-field reduction through plain ``xr.open_zarr``, whose dask
  chunks are the inner chunks (what the README used before the engine).

Times are the fastest of ``repeats`` runs after one warm-up. ``ratio`` = untiled ``field_s`` /
tiled ``field_s``: the speed whole-field reductions keep with tiles (1 = none lost). Defaults
are the demo's store (6 init times, 2 checkpoints x 5 members, 9 leads, 32 x 64); ``nlat=180
nlon=360 member_block=16 leads=8 inits=4`` is a 1 degree grid.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from swarmcast.pipelines.bench.common import machine

DEFAULTS: dict[str, Any] = {
    "inits": 6,
    "checkpoints": 2,
    "member_block": 5,
    "leads": 9,
    "nlat": 32,
    "nlon": 64,
    "tiles": "auto",
    "repeats": 5,
}
"""``tiles``: "auto" (the hindcast's default for the grid) or "LATxLON", e.g. "8x8"."""


def check(params: dict) -> None:
    """Refuses a ``tiles`` that is neither "auto" nor "LATxLON"."""
    from swarmcast.pipelines.config import ConfigError

    tiles = str(params.get("tiles", "auto"))
    if tiles != "auto" and not (tiles.count("x") == 1 and all(p.isdigit() for p in tiles.split("x"))):
        raise ConfigError(f"bench chunks: tiles={tiles!r}: expected auto or LATxLON, e.g. 4x4")


def _fastest(f: Callable[[], object], repeats: int) -> float:
    f()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def _write(folder: Path, p: dict, tiles: tuple[int, int]) -> Path:
    from swarmcast.ops.ensemble.store import EnsembleLayout, UnitWriter, create_ensemble_store
    from swarmcast.pipelines.bench.storage_io import smooth_field

    step = np.timedelta64(6, "h").astype("timedelta64[ns]")
    layout = EnsembleLayout(
        init_times=np.datetime64("2003-01-04T00", "ns") + np.arange(p["inits"]) * 16 * step,
        lead_times=np.arange(p["leads"]) * step,
        lat=np.linspace(90, -90, p["nlat"]),
        lon=np.arange(p["nlon"]) * 360 / p["nlon"],
        channels=("h",),
        checkpoints=tuple(f"seed-{c}" for c in range(p["checkpoints"])),
        perturbation=np.arange(p["member_block"]),
        sign=np.zeros(p["member_block"], dtype=int),
        member_block=p["member_block"],
        leads_per_shard=p["leads"],
        tiles=tiles,
    )
    seeds = np.zeros((p["inits"], layout.n_members), dtype=int)
    path = create_ensemble_store(folder / f"tiles-{tiles[0]}x{tiles[1]}.zarr", layout, seeds, {"swarmcast_stage": {}})
    for k, unit in enumerate(layout.units()):
        values = smooth_field((p["member_block"], p["leads"], 1, p["nlat"], p["nlon"]), seed=k)
        writer = UnitWriter(path, layout, unit)
        writer.write(values)
        writer.finish()
    return Path(str(path))


def _measure(path: Path, p: dict) -> dict[str, float]:
    import xarray as xr
    import zarr

    from swarmcast.ops.ensemble.chunking import ByteCountingStore

    stored = sum(f.stat().st_size for f in (path / "h").rglob("*") if f.is_file())
    counting = ByteCountingStore(path)
    arr = zarr.open_array(counting, path="h", mode="r")
    arr[:, :, :, p["nlat"] // 3, p["nlon"] // 3]
    ens = xr.open_dataset(path, engine="swarmcast", chunks={})
    plain = xr.open_zarr(path)
    last = p["leads"] - 1
    return {
        "point_fraction": counting.fetched / stored,
        "field_s": _fastest(lambda: (ens.h.mean("member").compute(), ens.h.std("member").compute()), p["repeats"]),
        "lead_map_s": _fastest(lambda: ens.h.isel(lead_time=last).mean("member").compute(), p["repeats"]),
        "field_s_open_zarr": _fastest(
            lambda: (plain.h.mean("member").compute(), plain.h.std("member").compute()), p["repeats"]
        ),
        "stored_mb": stored / 1e6,
    }


def run(params: dict) -> dict:
    import dask

    from swarmcast.ops.ensemble.chunking import auto_tiles

    p = {**DEFAULTS, **params}
    tiles = auto_tiles(p["nlat"], p["nlon"]) if p["tiles"] == "auto" else tuple(map(int, str(p["tiles"]).split("x")))
    with tempfile.TemporaryDirectory(prefix="swarmcast-bench-chunks-") as tmp, dask.config.set(scheduler="threads"):
        tiled = _measure(_write(Path(tmp), p, tiles), p)  # type: ignore[arg-type]
        untiled = _measure(_write(Path(tmp), p, (1, 1)), p)
    return {
        "bench": "chunks",
        "params": p,
        "machine": machine(),
        "tiles": list(tiles),
        "tiled": tiled,
        "untiled": untiled,
        "point_bytes_ratio": tiled["point_fraction"] / untiled["point_fraction"],
        "lead_map_ratio": untiled["lead_map_s"] / tiled["lead_map_s"],
        "ratio": untiled["field_s"] / tiled["field_s"],
    }


__all__ = ["DEFAULTS", "check", "run"]
