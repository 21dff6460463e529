"""``swarmcast stats``, ``channels`` and ``import-sfno``: bringing data and models you did not make here.

``stats`` computes the normalisation statistics training needs (mean, std and 6 h tendency std
per channel, ``swarmcast.ops.data.normalization``) of any store ``open_climate`` reads
(swarmcast, WeatherBench2 or ARCO-ERA5 layout), streaming blocks of time on this machine (or,
with ``--ray``/``--address``, one Ray task per block), and writes them to a JSON file that
``train-sfno``'s ``normalization:`` names: the store itself is never written (reanalysis
copies are often read-only or shared). ``channels`` prints the
channel vocabulary the readers map store variables to. ``import-sfno`` turns a torch-harmonics
SFNO state dict into a checkpoint folder hindcasts run (``swarmcast.ops.sfno.importing``).
This module imports neither torch nor xarray until a command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from swarmcast.ops.data.channels import PRESSURE_LEVEL, SHALLOW_WATER, SURFACE


def write_statistics(
    store: str,
    channels: list[str] | None,
    tendency_hours: float,
    output: Path,
    *,
    on_ray: bool = False,
    address: str | None = None,
) -> str:
    """Compute the statistics of ``store`` (every channel it has, or ``channels``) into
    ``output``; returns the lines to print. Channels the store lacks are refused, naming them.
    ``on_ray``: one Ray task per block of time (a private local Ray, or the cluster at
    ``address``), with the same result to the bit (``swarmcast.pipelines.data.statistics``)."""
    from swarmcast.ops.data.normalization import compute_normalization, statistics_document
    from swarmcast.ops.data.readers import open_climate

    ds = open_climate(store, channels)  # refuses unknown channels, listing the store's
    names = list(ds.data_vars)
    if on_ray or address:
        from swarmcast.ops.storage import is_url
        from swarmcast.pipelines.cluster.session import ray_session
        from swarmcast.pipelines.data.statistics import normalization_on_ray

        # tasks may run in another folder or on another node: give them the path from the root
        where = store if is_url(store) else str(Path(store).resolve())
        with ray_session(address):
            norm = normalization_on_ray(where, names, tendency_hours=tendency_hours)
    else:
        norm = compute_normalization(ds, names, tendency_hours=tendency_hours)
    doc = statistics_document(norm, store, ds["time"].values)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(output)  # never a half-written file where training looks
    width = max(len(c) for c in names)
    lines = [
        f"{store}: {doc['times']} times from {doc['first_time']} to {doc['last_time']}, {len(names)} channels",
        f"{'channel':<{width}}  {'mean':>12}  {'std':>12}  {f'{tendency_hours:g} h tendency std':>20}",
    ]
    for c, s in norm.channels.items():
        lines.append(f"{c:<{width}}  {s.mean:12.5g}  {s.std:12.5g}  {s.tendency_std:20.5g}")
    lines.append(f"written to {output}; train on it with `normalization: {output}` in the train-sfno stage")
    return "\n".join(lines)


def channel_table() -> str:
    """The channel vocabulary: names, units and the WeatherBench2 / ARCO-ERA5 names they map from."""
    rows = [("channel", "units", "store variable (level)", "long name")]
    for name, (long, info) in SURFACE.items():
        rows.append((name, info.units, long, info.long_name))
    for prefix, (long, info) in PRESSURE_LEVEL.items():
        rows.append((f"{prefix}<hPa>", info.units, f"{long} (level <hPa>)", f"{info.long_name}, e.g. {prefix}500"))
    for name, info in SHALLOW_WATER.items():
        rows.append((name, info.units, name, f"{info.long_name} (the built-in shallow-water data)"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows)


DATA_COMMANDS = ("stats", "channels", "import-sfno")


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``DATA_COMMANDS`` on the CLI's sub-parsers."""
    stats = sub.add_parser("stats", help="compute a climate store's normalisation statistics for training")
    stats.add_argument("store", help="a swarmcast, WeatherBench2 or ARCO-ERA5 layout store (path or URL)")
    stats.add_argument("--channels", help="comma-separated channels (default: every channel the store has)")
    stats.add_argument("--tendency-hours", type=float, default=6.0, help="interval of the tendency std (hours)")
    stats.add_argument("-o", "--output", default="normalization.json", help="JSON file to write")
    stats.add_argument("--ray", action="store_true", help="one Ray task per block of time (a private local Ray)")
    stats.add_argument("--address", help="run the tasks on this Ray cluster (implies --ray)")
    sub.add_parser("channels", help="list the channel names, units and the reanalysis variables they map from")
    imp = sub.add_parser("import-sfno", help="turn a torch-harmonics SFNO state dict into a swarmcast checkpoint")
    imp.add_argument("weights", help="the state dict: .safetensors, or a torch file (read without running code)")
    imp.add_argument("--channels", required=True, help="comma-separated channels, in the model's order")
    imp.add_argument("--normalization", required=True, help="statistics the model was trained with (swarmcast stats)")
    imp.add_argument("--validate-on", required=True, help="a climate store on the model's grid for the validation RMSE")
    imp.add_argument("-o", "--output", required=True, help="checkpoint folder to write (e.g. checkpoints/imported-0)")
    imp.add_argument("--time-step-hours", type=float, default=6.0, help="the model's time step")
    imp.add_argument("--validation-lead-hours", type=float, default=48.0, help="lead of the validation RMSE")
    imp.add_argument("--embed-dim", type=int, default=32)
    imp.add_argument("--num-layers", type=int, default=4)
    imp.add_argument("--scale-factor", type=int, default=1)
    imp.add_argument("--mlp-ratio", type=float, default=2.0)
    imp.add_argument("--grid-internal", default="legendre-gauss", choices=("legendre-gauss", "equiangular"))
    imp.add_argument(
        "--residual", action="store_true", help="the network predicts increments (swarmcast-trained), not the state"
    )


def run_data_command(args: argparse.Namespace) -> int:
    """Run one of ``DATA_COMMANDS``; user errors raise ``InputError`` (the CLI prints them)."""
    if args.command == "channels":
        print(channel_table())
        return 0
    names = [c.strip() for c in args.channels.split(",") if c.strip()] if args.channels else None
    if args.command == "stats":
        out = Path(args.output)
        print(write_statistics(args.store, names, args.tendency_hours, out, on_ray=args.ray, address=args.address))
        return 0
    print(import_checkpoint(args, names or []))
    return 0


def import_checkpoint(args: argparse.Namespace, channels: list[str]) -> str:
    """``import-sfno``: the checkpoint folder from the state dict and the declared model."""
    from swarmcast.ops.data.normalization import read_statistics_document
    from swarmcast.ops.data.readers import open_climate
    from swarmcast.ops.errors import InputError
    from swarmcast.ops.sfno.importing import import_sfno, read_state_dict
    from swarmcast.ops.sfno.model import SFNOConfig

    stats_path = Path(args.normalization)
    try:
        norm = read_statistics_document(json.loads(stats_path.read_text()), str(stats_path))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"--normalization {stats_path}: {err}") from None
    grid = open_climate(args.validate_on, channels).sizes
    try:
        config = SFNOConfig(
            channels=tuple(channels),
            nlat=grid["lat"],
            nlon=grid["lon"],
            embed_dim=args.embed_dim,
            num_layers=args.num_layers,
            scale_factor=args.scale_factor,
            grid_internal=args.grid_internal,
            residual=args.residual,
            mlp_ratio=args.mlp_ratio,
        )
    except ValueError as err:
        raise InputError(f"import-sfno: {err}") from None
    meta = import_sfno(
        read_state_dict(args.weights),
        config,
        norm,
        args.time_step_hours,
        args.validate_on,
        args.output,
        lead_hours=args.validation_lead_hours,
        source=args.weights,
    )
    lead = f"{args.validation_lead_hours:g}h"
    rmse = ", ".join(f"{c} {v:.4g}" for c, v in meta["validation_rmse"][lead].items())
    where = f"{len(channels)} channels on {config.nlat}x{config.nlon}"
    return f"wrote {args.output}: {where}; validation RMSE at {lead}: {rmse}"


__all__ = [
    "DATA_COMMANDS",
    "add_data_commands",
    "channel_table",
    "import_checkpoint",
    "run_data_command",
    "write_statistics",
]
