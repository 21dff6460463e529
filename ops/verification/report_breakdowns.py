"""The report's breakdowns, baselines, intervals and comparisons, drawn from the scores store's
per-init and per-checkpoint arrays (``swarmcast.ops.verification.breakdowns``).

Intervals are bootstrap percentiles over init dates (the dates are the independent samples a
verification has; members and grid points are not): ``BOOTSTRAP`` resamples of the dates with
replacement, the mean CRPS and the root of the mean squared error of each, 5-95 %. A
comparison of two runs pairs their common init dates: the difference of each date's CRPS,
resampled the same way; it is called significant when its 90 % interval excludes 0. Every
sentence the page shows is computed from these numbers.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import xarray as xr

from swarmcast.ops.verification.report import Figure, figure_grid, lead_hours, save_png, units_of

BOOTSTRAP = 1000
LEVEL = 0.90


def _resampled(n: int, seed: int = 0) -> np.ndarray:
    """(BOOTSTRAP, n) indices of init dates drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP, n))


def interval(per_init: np.ndarray, root: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the mean over the last axis (init dates; NaN left out), or the root of
    the mean with ``root`` (RMSE from MSE), from ``BOOTSTRAP`` resamples of the dates."""
    idx = _resampled(per_init.shape[-1])
    with np.errstate(invalid="ignore"):
        draws = np.nanmean(per_init[..., idx], axis=-1)  # (..., BOOTSTRAP)
        draws = np.sqrt(draws) if root else draws
    q = (1 - LEVEL) / 2
    return np.nanquantile(draws, q, axis=-1), np.nanquantile(draws, 1 - q, axis=-1)


def plot_baselines(scores: xr.Dataset, folder: Path) -> Figure:
    """CRPS and RMSE against lead with their intervals, beside persistence and climatology (global)."""
    variables = [str(v) for v in scores["variable"].values]
    fig, axes = figure_grid(len(variables), 2)
    h = lead_hours(scores["lead_time"])
    for row, v in zip(axes, variables, strict=True):
        g, u = scores.sel(variable=v, region="global"), units_of(scores, v)
        for ax, metric, per_init, root in (
            (row[0], "crps", "crps_per_init", False),
            (row[1], "rmse", "mse_per_init", True),
        ):
            lo, hi = interval(g[per_init].values, root=root)
            ax.fill_between(h, lo, hi, alpha=0.25, color="C0", label=f"{LEVEL:.0%} interval over init dates")
            ax.plot(h, g[metric], "o-", color="C0", label="ensemble")
            ax.plot(h, g[f"persistence_{metric}"], "s--", color="C1", label="persistence")
            ax.plot(h, g[f"climatology_{metric}"], ":", color="C2", label="climatology")
            name = "fair CRPS" if metric == "crps" else "ensemble-mean RMSE"
            ax.set(title=f"{v}: {name} (global)", xlabel="lead time [h]", ylabel=f"{metric.upper()} [{u}]")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    name = save_png(fig, folder, "baselines.png")
    return Figure(
        name,
        "Against persistence and climatology",
        f"Shaded: {LEVEL:.0%} bootstrap interval over the {scores.sizes['init_time']} init dates. "
        "Persistence and climatology are scored as single-valued forecasts (their CRPS is their mean absolute error).",
    )


def plot_breakdowns(scores: xr.Dataset, folder: Path) -> Figure:
    """Heat maps of the global CRPS by checkpoint and by init date against lead, each row of a
    variable divided by its all-member CRPS at the same lead (1 = as good as the whole ensemble)."""
    variables = [str(v) for v in scores["variable"].values]
    fig, axes = figure_grid(len(variables), 2, w=4.6, h=2.4)
    h = lead_hours(scores["lead_time"])
    inits = [np.datetime_as_string(t, unit="h") for t in scores["init_time"].values]
    for row, v in zip(axes, variables, strict=True):
        g = scores.sel(variable=v, region="global")
        whole = g["crps"].values[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            panels = (
                (g["crps_per_checkpoint"].values / whole, [str(c) for c in scores["checkpoint"].values], "checkpoint"),
                (g["crps_per_init"].values / whole, inits, "init date"),
            )
        for ax, (ratio, labels, what) in zip(row, panels, strict=True):
            im = ax.imshow(ratio.T, aspect="auto", cmap="RdYlBu_r", vmin=0, vmax=2, interpolation="nearest")
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
            step = max(1, len(h) // 6)
            ax.set_xticks(range(0, len(h), step), [f"{x:g}" for x in h[::step]])
            ax.set(title=f"{v}: CRPS by {what} / all members", xlabel="lead time [h]")
            fig.colorbar(im, ax=ax, shrink=0.85)
    name = save_png(fig, folder, "breakdowns.png")
    return Figure(
        name,
        "By checkpoint and by init date",
        "Global fair CRPS of each checkpoint's members alone, and of each init date, over the CRPS of all members "
        "at the same lead: red cells are worse than the ensemble as a whole.",
    )


def _ssr_per_checkpoint(g: xr.Dataset, members: int) -> np.ndarray:
    """Spread-skill ratio of each checkpoint's own members (finite-size corrected), (checkpoint,)."""
    m = max(members // g.sizes["checkpoint"], 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt((m + 1) / m) * g["spread_per_checkpoint"].values / g["rmse_per_checkpoint"].values


def breakdown_findings(scores: xr.Dataset, worse: float = 1.5, dispersion: float = 2.0) -> list[str]:
    """Sentences about the checkpoints at the last lead (global), none when none stands out:
    each whose own members' CRPS is more than ``worse`` times the median of the other
    checkpoints', and each whose spread-skill ratio is beyond ``dispersion`` or below its
    inverse (its perturbations grow far faster, or slower, than its errors)."""
    last = scores.sizes["lead_time"] - 1
    lead = lead_hours(scores["lead_time"])[last]
    labels = [str(c) for c in scores["checkpoint"].values]
    out = []
    for v in scores["variable"].values:
        g = scores.sel(variable=v, region="global").isel(lead_time=last)
        crps = g["crps_per_checkpoint"].values
        ssr = _ssr_per_checkpoint(g, int(scores.attrs.get("members", 2)))
        for k, c in enumerate(labels):
            others = np.delete(crps, k)
            typical = float(np.median(others)) if others.size else np.nan
            if typical > 0 and crps[k] > worse * typical:
                out.append(
                    f"{v}: checkpoint {c}'s members alone score a CRPS of {crps[k]:.4g} at {lead:g} h, "
                    f"{crps[k] / typical:.1f} times the median of the other checkpoints' ({typical:.4g})."
                )
            if np.isfinite(ssr[k]) and not 1 / dispersion <= ssr[k] <= dispersion:
                kind = "over-dispersed: its spread outgrows its error" if ssr[k] > 1 else "under-dispersed"
                out.append(f"{v}: checkpoint {c}'s spread-skill ratio at {lead:g} h is {ssr[k]:.2g} ({kind}).")
    return out


def breakdown_table(scores: xr.Dataset) -> str:
    """HTML: per variable and checkpoint, RMSE, spread, spread-skill ratio and CRPS at the last
    lead (global), then ``breakdown_findings``."""
    last = scores.sizes["lead_time"] - 1
    lead = lead_hours(scores["lead_time"])[last]
    head = "<tr><th>variable</th><th>checkpoint</th><th>RMSE</th><th>spread</th><th>SSR</th><th>CRPS</th></tr>"
    rows = [head]
    members = int(scores.attrs.get("members", 2))
    for v in scores["variable"].values:
        g = scores.sel(variable=v, region="global").isel(lead_time=last)
        ssr = _ssr_per_checkpoint(g, members)
        for k, c in enumerate(scores["checkpoint"].values):
            values = [float(g[f"{m}_per_checkpoint"].sel(checkpoint=c)) for m in ("rmse", "spread")]
            values += [float(ssr[k]), float(g["crps_per_checkpoint"].sel(checkpoint=c))]
            cells = [str(v), str(c)] + [f"{x:.4g}" for x in values]
            rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    findings = breakdown_findings(scores)
    said = "".join(f"<li>{html.escape(s)}</li>" for s in findings) or "<li>No checkpoint stands out.</li>"
    return f"<p>Each checkpoint alone at lead {lead:g} h (global):</p><table>{''.join(rows)}</table><ul>{said}</ul>"


def compare(a: xr.Dataset, b: xr.Dataset) -> xr.Dataset:
    """Run ``b`` against run ``a`` on their common init dates, variables and leads (global):
    ``difference`` (b - a) of the mean CRPS, its interval ``low``/``high`` from paired date
    resampling, and ``significant`` where the interval excludes 0. Raises ``ValueError`` when
    the runs share no init date, variable or lead."""
    inits = np.intersect1d(a["init_time"].values, b["init_time"].values)
    variables = [v for v in a["variable"].values if v in set(b["variable"].values)]
    leads = np.intersect1d(a["lead_time"].values, b["lead_time"].values)
    if not (len(inits) and variables and len(leads)):
        raise ValueError(
            f"the runs share {len(inits)} init dates, {len(variables)} variables and {len(leads)} leads:"
            " nothing to compare"
        )
    pick = {"variable": variables, "lead_time": leads, "init_time": inits, "region": "global"}
    da, db = a["crps_per_init"].sel(pick), b["crps_per_init"].sel(pick)
    diff = (db - da).values  # (variable, lead, init)
    lo, hi = interval(diff)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(diff, axis=-1)
    coords = {"variable": variables, "lead_time": leads}
    dims = ("variable", "lead_time")
    return xr.Dataset(
        {
            "crps_a": (dims, np.nanmean(da.values, axis=-1)),
            "crps_b": (dims, np.nanmean(db.values, axis=-1)),
            "difference": (dims, mean),
            "low": (dims, lo),
            "high": (dims, hi),
            "significant": (dims, (lo > 0) | (hi < 0)),
        },
        coords=coords,
        attrs={"init_dates": len(inits)},
    )


def plot_comparison(cmp: xr.Dataset, names: tuple[str, str], folder: Path) -> Figure:
    """Per variable: the CRPS difference (b - a) against lead with its interval."""
    variables = [str(v) for v in cmp["variable"].values]
    fig, axes = figure_grid(1, len(variables))
    h = lead_hours(cmp["lead_time"])
    for ax, v in zip(axes[0], variables, strict=True):
        c = cmp.sel(variable=v)
        ax.fill_between(h, c["low"], c["high"], alpha=0.25, color="C4")
        ax.plot(h, c["difference"], "o-", color="C4")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(title=f"{v}: CRPS {names[1]} - {names[0]}", xlabel="lead time [h]", ylabel="CRPS difference")
        ax.grid(alpha=0.3)
    name = save_png(fig, folder, "comparison.png")
    caption = (
        f"Mean over the {cmp.attrs['init_dates']} init dates both runs scored; shaded: {LEVEL:.0%} interval "
        "of the difference from resampling those dates in pairs. Below 0: the second run is better."
    )
    return Figure(name, f"{names[1]} against {names[0]}", caption)


def comparison_findings(cmp: xr.Dataset, names: tuple[str, str]) -> list[str]:
    """One sentence per variable: where the second run is significantly better or worse."""
    h = lead_hours(cmp["lead_time"])
    out = []
    for v in cmp["variable"].values:
        c = cmp.sel(variable=v)
        better = [
            f"{x:g}" for x, s, d in zip(h, c["significant"].values, c["difference"].values, strict=True) if s and d < 0
        ]
        worse = [
            f"{x:g}" for x, s, d in zip(h, c["significant"].values, c["difference"].values, strict=True) if s and d > 0
        ]
        parts = []
        if better:
            parts.append(f"better at {', '.join(better)} h")
        if worse:
            parts.append(f"worse at {', '.join(worse)} h")
        verdict = " and ".join(parts) if parts else "not significantly different at any lead"
        out.append(f"{v}: {names[1]} is {verdict} than {names[0]} (CRPS, {LEVEL:.0%} interval over init dates).")
    return out


__all__ = [
    "breakdown_findings",
    "breakdown_table",
    "compare",
    "comparison_findings",
    "interval",
    "plot_baselines",
    "plot_breakdowns",
    "plot_comparison",
]
