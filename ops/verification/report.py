"""The verification report: PNG plots of a scores store (and maps from the ensemble) plus ``index.html``.

Every plot carries axis labels with units; lead times are shown in hours. The page ties the
figures together with a table of headline scores and the pipeline config that made them.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib import ticker
from matplotlib.figure import Figure as MplFigure

from swarmcast.ops.verification.diagnostics import (
    large_scale_share,
    rank_sentence,
    spectra_sentence,
    spread_map_findings,
    spread_map_sentence,
)

DPI = 110
REGION_STYLES = {"global": "-", "northern-extratropics": "--", "tropics": ":", "southern-extratropics": "-."}


@dataclass(frozen=True)
class Figure:
    file: str
    title: str
    caption: str


def lead_hours(lead: xr.DataArray) -> np.ndarray:
    return lead.values.astype("timedelta64[s]").astype(np.float64) / 3600.0


def units_of(scores: xr.Dataset, v: str) -> str:
    return str(scores["units"].sel(variable=v).item())


def figure_grid(n_rows: int, n_cols: int, w: float = 3.6, h: float = 2.8) -> tuple[MplFigure, np.ndarray]:
    # matplotlib's object API, not pyplot: no global backend or figure registry is touched, so
    # importing or drawing a report leaves a notebook's matplotlib set-up as it was
    fig = MplFigure(figsize=(w * n_cols, h * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    return fig, axes


def save_png(fig: MplFigure, folder: Path, name: str) -> str:
    fig.savefig(folder / name, dpi=DPI)  # PNG through the Agg canvas, chosen for this call only
    return name


def plot_scores_vs_lead(scores: xr.Dataset, folder: Path) -> Figure:
    variables = list(scores["variable"].values)
    fig, axes = figure_grid(len(variables), 4)
    h = lead_hours(scores["lead_time"])
    m = int(scores.attrs["members"])
    for row, v in zip(axes, variables, strict=True):
        s, u = scores.sel(variable=v), units_of(scores, v)
        g = s.sel(region="global")
        row[0].plot(h, g["rmse"], "o-", label="ensemble-mean RMSE")
        row[0].plot(h, g["spread"], "s--", label="spread")
        row[0].plot(h, g["best_member_rmse"], "^:", label="best-member RMSE")
        row[0].set(ylabel=f"{v} [{u}]", title=f"{v}: error and spread (global)")
        row[1].plot(h, g["crps"], "o-", color="C3")
        row[1].set(ylabel=f"CRPS [{u}]", title=f"{v}: fair CRPS (global)")
        later = h > 0  # at lead 0 the +/- pairs centre on the analysis: SSR is spread / rounding error
        for r in s["region"].values:
            row[2].plot(h[later], s["ssr"].sel(region=r)[later], REGION_STYLES.get(str(r), "-"), label=str(r))
            row[3].plot(h, s["outlier_rate"].sel(region=r), REGION_STYLES.get(str(r), "-"), label=str(r))
        row[2].axhline(1.0, color="k", lw=0.8)
        row[2].set(ylabel="spread / skill", title=f"{v}: spread-skill ratio")
        row[3].axhline(2 / (m + 1), color="k", lw=0.8, label=f"expected 2/(M+1), M={m}")
        row[3].set(ylabel="fraction of area", title=f"{v}: truth outside ensemble")
        for ax in row:
            ax.set_xlabel("lead time [h]")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
        row[2].legend(fontsize=7)
        row[3].legend(fontsize=7)
    name = save_png(fig, folder, "scores_vs_lead.png")
    return Figure(name, "Scores against lead time", "Area-weighted means over all init times. Lines per region.")


def plot_rank_histograms(scores: xr.Dataset, folder: Path) -> Figure:
    variables = list(scores["variable"].values)
    n_lead = scores.sizes["lead_time"]
    picks = sorted({min(1, n_lead - 1), n_lead // 2, n_lead - 1})
    fig, axes = figure_grid(len(variables), len(picks))
    m = int(scores.attrs["members"])
    hours = lead_hours(scores["lead_time"])
    for row, v in zip(axes, variables, strict=True):
        for ax, j in zip(row, picks, strict=True):
            freq = scores["rank_histogram"].sel(variable=v, region="global").isel(lead_time=j).values
            ax.bar(np.arange(m + 1), freq * (m + 1), width=0.9)
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set(title=f"{v}, lead {hours[j]:g} h", xlabel="rank of truth among members", ylabel="frequency x (M+1)")
    name = save_png(fig, folder, "rank_histograms.png")
    caption = "Global, area-weighted; flat at 1 means calibrated. " + rank_sentence(scores, picks[-1])
    return Figure(name, "Rank histograms", caption)


def plot_spectra(scores: xr.Dataset, folder: Path) -> Figure | None:
    if "spectrum_members" not in scores:
        return None
    variables = list(scores["variable"].values)
    fig, axes = figure_grid(1, len(variables), w=4.2, h=3.4)
    deg = scores["degree"].values[1:]
    last = scores.sizes["lead_time"] - 1
    for ax, v in zip(axes[0], variables, strict=True):
        s = scores.sel(variable=v).isel(lead_time=last, degree=slice(1, None))
        ax.loglog(deg, s["spectrum_truth"], "k-", label="truth")
        ax.loglog(deg, s["spectrum_members"], "C0-", label="members")
        ax.loglog(deg, s["spectrum_ensemble_mean"], "C1--", label="ensemble mean")
        lead = lead_hours(scores["lead_time"])[last]
        ax.set(
            title=f"{v} at {lead:g} h", xlabel="spherical harmonic degree l", ylabel=f"C_l [({units_of(scores, v)})^2]"
        )
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())  # plain degrees, not 2x10^0
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.legend(fontsize=7)
    name = save_png(fig, folder, "spectra.png")
    return Figure(name, "Angular power spectra", spectra_sentence(scores, last))


def plot_skill_vs_size(scores: xr.Dataset, folder: Path) -> Figure:
    variables = list(scores["variable"].values)
    fig, axes = figure_grid(1, len(variables), w=4.0, h=3.2)
    sizes = scores["ensemble_size"].values
    last = scores.sizes["lead_time"] - 1
    lead = lead_hours(scores["lead_time"])[last]
    for ax, v in zip(axes[0], variables, strict=True):
        s = scores.sel(variable=v, region="global").isel(lead_time=last)
        ax.plot(sizes, s["rmse_by_size"], "o-", label="ensemble-mean RMSE")
        ax.plot(sizes, s["empirical_crps_by_size"], "s-", label="empirical CRPS")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(k) for k in sizes])
        ax.set(title=f"{v} at {lead:g} h", xlabel="ensemble size", ylabel=f"score [{units_of(scores, v)}]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    name = save_png(fig, folder, "skill_vs_size.png")
    return Figure(name, "Skill against ensemble size", "Bootstrap means over random sub-ensembles (global).")


def plot_maps(
    ensemble: xr.Dataset, truth: xr.Dataset, variable: str, picks: list[tuple[int, int]], folder: Path
) -> tuple[Figure, list[str]]:
    """Ensemble mean, spread and error of ``variable``, one row per (init index, lead index) in
    ``picks``; with the spread maps' findings (``spread_map_findings``) for the diagnostics."""
    lat, lon = ensemble["lat"].values, ensemble["lon"].values
    units = ensemble[variable].attrs.get("units", "")
    hours = lead_hours(ensemble["lead_time"])
    fig, axes = figure_grid(len(picks), 3, w=4.4, h=2.6)
    shown, spreads = [], []
    for row, (i, j) in zip(axes, picks, strict=True):
        fc = ensemble[variable].isel(init_time=i, lead_time=j).values.astype(np.float64)
        obs = truth[variable].isel(init_time=i, lead_time=j).values.astype(np.float64)
        mean, spread = fc.mean(axis=0), fc.std(axis=0, ddof=1)
        spreads.append(spread)
        err = mean - obs
        lim = np.abs(err).max() or 1.0
        init = np.datetime_as_string(ensemble["init_time"].values[i], unit="h")
        shown.append(f"{init} +{hours[j]:g} h")
        panels = [
            (mean, "ensemble mean", "viridis", None),
            (spread, "ensemble spread (std)", "magma", None),
            (err, "ensemble mean - truth", "RdBu_r", (-lim, lim)),
        ]
        for ax, (field, title, cmap, clim) in zip(row, panels, strict=True):
            vmin, vmax = clim if clim else (None, None)
            im = ax.pcolormesh(lon, lat, field, cmap=cmap, shading="nearest", vmin=vmin, vmax=vmax)
            fig.colorbar(im, ax=ax, label=f"{variable} [{units}]", shrink=0.85)
            ax.set(title=f"{title}: {init} +{hours[j]:g} h", xlabel="longitude [deg E]", ylabel="latitude [deg N]")
    fig.suptitle(f"{variable}: {ensemble.sizes['member']} members")
    name = save_png(fig, folder, f"maps_{variable}.png")
    shares, nlat = large_scale_share(np.stack(spreads)), len(lat)
    caption = f"Init times and leads: {'; '.join(shown)}. {spread_map_sentence(shares, nlat)}"
    return Figure(name, f"Maps of {variable}", caption), spread_map_findings(variable, shares, nlat)


def _headline_table(scores: xr.Dataset) -> str:
    last = scores.sizes["lead_time"] - 1
    lead = lead_hours(scores["lead_time"])[last]
    rows = ["<tr><th>variable</th><th>units</th><th>RMSE</th><th>spread</th><th>SSR</th><th>CRPS</th></tr>"]
    for v in scores["variable"].values:
        s = scores.sel(variable=v, region="global").isel(lead_time=last)
        cells = [str(v), units_of(scores, str(v))] + [f"{float(s[k]):.4g}" for k in ("rmse", "spread", "ssr", "crps")]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<p>Global scores at lead {lead:g} h:</p><table>{''.join(rows)}</table>"


def write_index(
    folder: Path, scores: xr.Dataset, figures: list[Figure], config: dict, title: str, sections: Sequence[str] = ()
) -> Path:
    """``index.html`` with the headline table, ``sections`` (HTML), every figure with its
    caption, and the config."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1500px;margin:2em auto;padding:0 1em}"
        "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}pre{background:#f6f6f6;padding:1em}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
        f"<p>{int(scores.attrs['members'])} members, {int(scores.attrs['init_times'])} init times, "
        f"forecast <code>{html.escape(str(scores.attrs.get('forecast', '')))}</code>, "
        f"truth <code>{html.escape(str(scores.attrs.get('truth', '')))}</code>.</p>",
        _headline_table(scores),
        *sections,
    ]
    for f in figures:
        parts += [f"<h2>{html.escape(f.title)}</h2>", f"<p>{html.escape(f.caption)}</p>", f"<img src='{f.file}'>"]
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(json.dumps(config, indent=2))}</pre>", "</body></html>"]
    index = folder / "index.html"
    index.write_text("\n".join(parts))
    return index


__all__ = [
    "Figure",
    "plot_maps",
    "plot_rank_histograms",
    "plot_scores_vs_lead",
    "plot_skill_vs_size",
    "plot_spectra",
    "write_index",
]
