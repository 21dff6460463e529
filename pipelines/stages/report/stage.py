"""Stage ``report``: a folder of PNG plots and an ``index.html`` from a scores store.

With ``forecast`` and ``truth`` set it also draws maps (ensemble mean, spread, error) of the
first init time. The folder is built in a staging folder and published when complete (renamed,
or uploaded to a URL with ``swarmcast_stage.json`` last); that file records the config so a
rerun with the same config is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.storage import as_zarr, publish, staging
from swarmcast.ops.verification import align_truth, open_ensemble, report
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.report.config import ReportConfig

STAGE_FILE = "swarmcast_stage.json"


def _maps(config: ReportConfig, ctx: StageContext, variables: list[str], folder: Path) -> list[report.Figure]:
    if config.forecast is None:
        return []
    if config.truth is None:
        raise ConfigError("truth: maps of the error need a truth store (or set forecast: null)")
    ens = open_ensemble(resolve_path(ctx.base, config.forecast))
    truth = align_truth(ens, open_climate(resolve_path(ctx.base, config.truth), variables))
    hours = ens["lead_time"].values.astype("timedelta64[s]").astype(float) / 3600
    if config.map_lead_hours is None:
        lead = len(hours) - 1
    else:
        matches = [i for i, h in enumerate(hours) if abs(h - config.map_lead_hours) < 1e-6]
        if not matches:
            raise ConfigError(f"map_lead_hours: {config.map_lead_hours} is not a stored lead ({list(hours)})")
        lead = matches[0]
    return [report.plot_maps(ens, truth, v, lead, folder) for v in variables]


def run(config: ReportConfig, ctx: StageContext) -> dict:
    spath = resolve_path(ctx.base, config.scores)
    try:
        scores = xr.open_zarr(as_zarr(spath)).load()
    except FileNotFoundError as err:
        raise ConfigError(f"scores: {err}") from None
    if "crps" not in scores:
        raise ConfigError(f"scores: {spath} is not a scores store (no 'crps' variable)")
    out = resolve_path(ctx.base, config.output)
    tmp = staging(out)
    variables = [str(v) for v in scores["variable"].values]
    figures = [
        report.plot_scores_vs_lead(scores, tmp),
        report.plot_rank_histograms(scores, tmp),
        report.plot_skill_vs_size(scores, tmp),
    ]
    spectra = report.plot_spectra(scores, tmp)
    figures += [spectra] if spectra else []
    figures += _maps(config, ctx, variables, tmp)
    config_shown = {"report": config.model_dump(mode="json"), "pipeline": ctx.pipeline_raw}
    report.write_index(tmp, scores, figures, config_shown, config.title)
    (tmp / STAGE_FILE).write_text(json.dumps(ctx.fingerprint(config)))
    publish(tmp, out, marker=STAGE_FILE)  # replaces an old report only with --overwrite (runner)
    index = out / "index.html"
    print(f"[{config.label}] report: {index}")
    return {"path": str(out), "index": str(index), "figures": len(figures)}
