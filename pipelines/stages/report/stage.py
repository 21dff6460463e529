"""Stage ``report``: a folder of PNG plots and an ``index.html`` from a scores store.

Scores against lead with persistence, climatology and intervals over init dates, breakdowns by
checkpoint and init date (``swarmcast.ops.verification.report_breakdowns``); with ``forecast``
and ``truth`` set, maps (ensemble mean, spread, error) at three leads of the first and last init
dates; with ``compare``, this run against another run's scores. The folder is built in a
staging folder and published when complete (renamed, or uploaded to a URL with
``swarmcast_stage.json`` last); that file records the config so a rerun with the same config
is skipped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import xarray as xr

from swarmcast.ops.data.cf import portable_path
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.storage import as_zarr, publish, staging
from swarmcast.ops.verification import align_truth, open_ensemble, report
from swarmcast.ops.verification import report_breakdowns as extra
from swarmcast.ops.verification.diagnostics import diagnostics_html
from swarmcast.ops.verification.finish import finish_scores
from swarmcast.ops.verification.report_page import interactive_section
from swarmcast.ops.verification.sums_store import MismatchedSumsError, sums_of
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.report.config import ReportConfig

STAGE_FILE = "swarmcast_stage.json"


def _maps(
    config: ReportConfig, ctx: StageContext, variables: list[str], folder: Path
) -> tuple[list[report.Figure], list[str]]:
    """The map figures and the spread maps' diagnostics findings (none without a forecast)."""
    if config.forecast is None:
        return [], []
    if config.truth is None:
        raise ConfigError("truth: maps of the error need a truth store (or set forecast: null)")
    ens = open_ensemble(resolve_path(ctx.base, config.forecast))
    truth = align_truth(ens, open_climate(resolve_path(ctx.base, config.truth), variables))
    hours = ens["lead_time"].values.astype("timedelta64[s]").astype(float) / 3600
    if config.map_lead_hours is None:
        leads = sorted({min(1, len(hours) - 1), len(hours) // 2, len(hours) - 1})
    else:
        matches = [i for i, h in enumerate(hours) if abs(h - config.map_lead_hours) < 1e-6]
        if not matches:
            raise ConfigError(f"map_lead_hours: {config.map_lead_hours} is not a stored lead ({list(hours)})")
        leads = matches[:1]
    inits = sorted({0, ens.sizes["init_time"] - 1})  # the first and the last init date
    picks = [(i, j) for i in inits for j in leads]
    drawn = [report.plot_maps(ens, truth, v, picks, folder) for v in variables]
    return [figure for figure, _ in drawn], [finding for _, found in drawn for finding in found]


def _comparison(config: ReportConfig, ctx: StageContext, scores: xr.Dataset, folder: Path) -> tuple[list, list[str]]:
    """(figures, HTML sections) of this run against ``compare``; none without it."""
    if config.compare is None:
        return [], []
    other = _open_scores(resolve_path(ctx.base, config.compare), "compare")
    names = (portable_path(config.compare), portable_path(config.scores))
    try:
        cmp = extra.compare(other, scores)
    except ValueError as err:
        raise ConfigError(f"compare: {err}") from None
    said = "".join(f"<li>{html.escape(s)}</li>" for s in extra.comparison_findings(cmp, names))
    return [extra.plot_comparison(cmp, names, folder)], [f"<h2>Against {html.escape(names[0])}</h2><ul>{said}</ul>"]


def _open_scores(path: Path, key: str) -> xr.Dataset:
    try:
        scores = xr.open_zarr(as_zarr(path)).load()
    except FileNotFoundError as err:
        raise ConfigError(f"{key}: {err}") from None
    missing = [k for k in ("crps", "crps_per_init", "crps_per_checkpoint") if k not in scores]
    if missing:
        raise ConfigError(
            f"{key}: {path} is not a scores store of this swarmcast (no {missing}); score the ensemble again"
        )
    return scores


def _refinished(config: ReportConfig, scores: xr.Dataset) -> xr.Dataset:
    """The scores over ``config.regions`` and ``config.init_times``, finished from the store's sums."""
    if config.regions is None and config.init_times is None:
        return scores
    try:
        sums = sums_of(scores)
    except MismatchedSumsError as err:
        raise ConfigError(f"scores: {err}") from None
    if config.init_times is not None:
        want = np.array(config.init_times, dtype="datetime64[ns]")
        have = scores["init_time"].values.astype("datetime64[ns]")
        missing = [config.init_times[k] for k, t in enumerate(want) if t not in have]
        if missing:
            shown = [str(t.astype("datetime64[h]")) for t in have[:5]]
            raise ConfigError(f"init_times: {missing} are not scored in the store (it has {shown}...)")
        sums = sums.sel(init_time=want)
    regions = config.regions or [str(r) for r in scores["region"].values]
    regions = ["global", *[r for r in regions if r != "global"]]  # the headline figures are global
    out = finish_scores(sums, regions, str(scores.attrs.get("latitude_weighting", "area")))
    out.attrs = {**scores.attrs, **out.attrs}
    return out


def run(config: ReportConfig, ctx: StageContext) -> dict:
    scores = _refinished(config, _open_scores(resolve_path(ctx.base, config.scores), "scores"))
    out = resolve_path(ctx.base, config.output)
    tmp = staging(out)
    variables = [str(v) for v in scores["variable"].values]
    figures = [
        report.plot_scores_vs_lead(scores, tmp),
        extra.plot_baselines(scores, tmp),
        extra.plot_breakdowns(scores, tmp),
        report.plot_rank_histograms(scores, tmp),
        report.plot_skill_vs_size(scores, tmp),
    ]
    spectra = report.plot_spectra(scores, tmp)
    figures += [spectra] if spectra else []
    maps, map_findings = _maps(config, ctx, variables, tmp)
    figures += maps
    compared, sections = _comparison(config, ctx, scores, tmp)
    config_shown = {"report": config.model_dump(mode="json"), "pipeline": ctx.pipeline_raw}
    sections = [
        diagnostics_html(scores, more=map_findings),
        extra.breakdown_table(scores),
        *sections,
        interactive_section(scores),
    ]
    report.write_index(tmp, scores, compared + figures, config_shown, config.title, sections)
    (tmp / STAGE_FILE).write_text(json.dumps(ctx.fingerprint(config)))
    publish(tmp, out, marker=STAGE_FILE)  # replaces an old report only with --overwrite (runner)
    index = out / "index.html"
    print(f"[{config.label}] report: {index}")
    return {"path": str(out), "index": str(index), "figures": len(figures)}
