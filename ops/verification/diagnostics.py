"""What a scores store says about the ensemble, in sentences computed from its numbers.

The report opens with a short list of what is off (``diagnose``) and captions its spectra and
rank histograms from the same numbers (``spectra_sentence``, ``rank_sentence``), so no sentence
on the page is written in advance. The checks, each over every lead from ``from_hours`` (the
first hours of a bred or seeded ensemble are dominated by the perturbation's own scale):

- spread-skill ratio (global, finite-size corrected) outside ``ssr_band`` (default [0.6, 1.5]);
- members' angular power outside ``1/spectral_factor`` to ``spectral_factor`` (default 3) times
  the truth's at any degree from 1 to 2/3 of the largest (degree 0 is the global mean, not a
  scale; the last third is where every truncated model and the SHT's aliasing are least
  trustworthy, as in WeatherBench 2's spectral plots);
- tails: the outlier rate (truth outside the ensemble's range; a consistent ensemble of M
  members has 2 / (M + 1)) above what a Gaussian M-member ensemble with the band's lowest
  spread-skill ratio has, or below what one with its highest has
  (``kernels.ensemble_scores.gaussian_outlier_rate``: 0.397 and 0.065 for 10 members). The
  rank histogram's end bins are the same event (the truth ranks 0 or M exactly when it is
  outside), so a U-shaped (dome-shaped) histogram is this finding, stated in both terms, not a
  second one. Limits derived from the band keep the page from contradicting itself: fixed
  ones (2 x 2 / (M + 1), end bins within 50% of flat) called ensembles "U-shaped" whose
  spread-skill ratio of 0.8 the band accepts;
- rank histograms whose least-squares slope (``rank_shape``) exceeds ``slope_limit``: the
  truth sits mostly above or below the members (a bias);
- maps of ensemble spread (the report's, from the forecast store: ``spread_map_findings``) whose
  variance about their mean lies less than ``spread_share_min`` at degrees 1 to 2/3 of the
  largest: speckle rather than synoptic structure. White noise puts ((L + 1)^2 - 1) /
  (lmax^2 - 1) there (47% on a 32 x 64 grid, L = 10 of lmax = 16); spread that follows weather
  systems puts 80-98% there.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from swarmcast.kernels.ensemble_scores import gaussian_outlier_rate
from swarmcast.kernels.spectra import angular_power_spectrum, default_lmax


@dataclass(frozen=True)
class Thresholds:
    """Where each check flags (see the module docstring)."""

    ssr_band: tuple[float, float] = (0.6, 1.5)
    spectral_factor: float = 3.0
    slope_limit: float = 0.5
    from_hours: float = 12.0
    spread_share_min: float = 0.75


def _hours(scores: xr.Dataset) -> np.ndarray:
    return scores["lead_time"].values.astype("timedelta64[s]").astype(np.float64) / 3600.0


def rank_shape(freq: np.ndarray) -> tuple[float, float]:
    """(slope, end excess) of a rank histogram ``freq`` (M + 1,) of frequencies summing to 1.

    With f = freq x (M + 1) (1 everywhere when flat) and x the rank mapped onto [-1, 1]: slope is
    the least-squares slope of f on x (positive: the truth tends to rank above the members, they
    are biased low); end excess is (f_0 + f_M) / 2 - 1 (positive: U-shaped, negative: dome).
    """
    f = np.asarray(freq, dtype=np.float64) * len(freq)
    x = np.linspace(-1.0, 1.0, len(f))
    slope = float(np.sum((x - x.mean()) * (f - f.mean())) / np.sum((x - x.mean()) ** 2))
    return slope, float((f[0] + f[-1]) / 2 - 1)


def top_checked_degree(largest: int) -> int:
    """2/3 of the ``largest`` degree: the spectral and spread-map checks cover degrees 1 to this."""
    return (2 * largest) // 3


def scored_degrees(scores: xr.Dataset) -> np.ndarray:
    """The degrees the spectral check covers: 1 to ``top_checked_degree``."""
    deg = scores["degree"].values
    return deg[(deg >= 1) & (deg <= top_checked_degree(int(deg.max())))]


def power_ratio(scores: xr.Dataset, which: str = "spectrum_members") -> xr.DataArray:
    """``which`` / truth's angular power (variable, lead_time, degree) on ``scored_degrees``."""
    deg = scored_degrees(scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (scores[which] / scores["spectrum_truth"]).sel(degree=deg)


def _leads(scores: xr.Dataset, t: Thresholds) -> np.ndarray:
    return np.flatnonzero(_hours(scores) >= t.from_hours)


def _worst(values: np.ndarray, hours: np.ndarray, bad: np.ndarray) -> str:
    """'at 4 of 8 leads, most at 48 h (4.5)' for the flagged ``values`` (leads,)."""
    k = int(np.argmax(np.where(bad, np.abs(np.log(np.abs(values) + 1e-300)), -np.inf)))
    return f"at {int(bad.sum())} of {len(bad)} leads from {hours[0]:g} h, most at {hours[k]:g} h ({values[k]:.2g})"


def _ssr_findings(scores: xr.Dataset, v: str, idx: np.ndarray, t: Thresholds) -> list[str]:
    ssr = scores["ssr"].sel(variable=v, region="global").values[idx]
    lo, hi = t.ssr_band
    out = []
    for bad, what in ((ssr > hi, "over-dispersed: spread outgrows the error"), (ssr < lo, "under-dispersed")):
        if bad.any():
            out.append(
                f"{v}: spread-skill ratio outside [{lo:g}, {hi:g}] ({what}) {_worst(ssr, _hours(scores)[idx], bad)}."
            )
    return out


def _spectral_findings(scores: xr.Dataset, v: str, idx: np.ndarray, t: Thresholds) -> list[str]:
    if "spectrum_members" not in scores:
        return []
    ratio = power_ratio(scores).sel(variable=v).isel(lead_time=idx)
    hours, deg = _hours(scores)[idx], ratio["degree"].values
    out = []
    f = t.spectral_factor
    for bad_of, what in ((lambda r: r > f, f"more than {f:g}x"), (lambda r: r < 1 / f, f"less than 1/{f:g} of")):
        bad = bad_of(ratio.values)  # (lead, degree)
        if not bad.any():
            continue
        j, d = np.unravel_index(np.argmax(np.where(bad, np.abs(np.log(ratio.values)), -np.inf)), bad.shape)
        worst = float(ratio.values[j, d])
        out.append(
            f"{v}: members carry {what} the truth's power at {int(bad.any(axis=1).sum())} of {len(hours)} leads; "
            f"worst {worst:.3g}x at degree {int(deg[d])}, {hours[j]:g} h (of degrees {int(deg[0])}-{int(deg[-1])})."
        )
    return out


def outlier_limits(scores: xr.Dataset, t: Thresholds) -> tuple[float, float]:
    """(lowest, highest) outlier rate the spread-skill band allows an ensemble of the scored size."""
    members = round(2 / float(scores["outlier_rate_expected"]) - 1)
    lo, hi = t.ssr_band
    return gaussian_outlier_rate(hi, members), gaussian_outlier_rate(lo, members)


def _tail_findings(scores: xr.Dataset, v: str, idx: np.ndarray, t: Thresholds) -> list[str]:
    expected = float(scores["outlier_rate_expected"])
    low, high = outlier_limits(scores, t)
    rate = scores["outlier_rate"].sel(variable=v, region="global").values[idx]
    hours, out = _hours(scores)[idx], []
    for bad, what, shape, ssr, limit in (
        (rate > high, "more", "U-shaped", t.ssr_band[0], high),
        (rate < low, "less", "dome-shaped", t.ssr_band[1], low),
    ):
        if bad.any():
            k = int(np.argmax(np.where(bad, np.abs(np.log(rate / expected)), -np.inf)))
            ends = rate[k] / expected - 1  # the end bins' mean over flat: (M + 1) / 2 x rate
            out.append(
                f"{v}: the truth falls outside the ensemble over {what} of the area than a spread-skill "
                f"ratio of {ssr:g} gives a Gaussian ensemble of this size ({limit:.3g}; "
                f"consistent: {expected:.3g}) at {int(bad.sum())} of {len(hours)} leads from {hours[0]:g} h, "
                f"most at {hours[k]:g} h ({rate[k]:.2g}; rank histogram {shape}, end bins {ends:+.0%} over flat)."
            )
    return out


def _rank_findings(scores: xr.Dataset, v: str, idx: np.ndarray, t: Thresholds) -> list[str]:
    hist = scores["rank_histogram"].sel(variable=v, region="global").values[idx]
    slope = np.array([rank_shape(h)[0] for h in hist])
    bad = np.abs(slope) > t.slope_limit
    if not bad.any():
        return []
    hours = _hours(scores)[idx]
    k = int(np.argmax(np.where(bad, np.abs(slope), -np.inf)))
    return [
        f"{v}: rank histogram sloped (the truth sits mostly on one side: a bias; slope {slope[k]:+.2f} "
        f"at {hours[k]:g} h), at {int(bad.sum())} of {len(hours)} leads from {hours[0]:g} h."
    ]


def diagnose(scores: xr.Dataset, thresholds: Thresholds | None = None) -> list[str]:
    """One sentence per (check, variable) that flags, naming the numbers; [] when none does."""
    t = thresholds or Thresholds()
    idx = _leads(scores, t)
    if idx.size == 0:
        return []
    out: list[str] = []
    for v in (str(x) for x in scores["variable"].values):
        for check in (_ssr_findings, _spectral_findings, _tail_findings, _rank_findings):
            out += check(scores, v, idx, t)
    return out


def checks_done(scores: xr.Dataset, thresholds: Thresholds | None = None) -> str:
    """What ``diagnose`` checked, for a page that reports no finding."""
    t = thresholds or Thresholds()
    lo, hi = t.ssr_band
    deg = scored_degrees(scores) if "degree" in scores else np.array([0])
    low, high = outlier_limits(scores, t)
    return (
        f"every lead from {t.from_hours:g} h, global: spread-skill ratio in [{lo:g}, {hi:g}]; members' power "
        f"within {t.spectral_factor:g}x of the truth's at degrees {int(deg[0])}-{int(deg[-1])}; outlier rate "
        f"(the rank histogram's end bins) within {low:.3g}-{high:.3g}, what those spread-skill ratios give a "
        f"Gaussian ensemble of this size; rank histograms' slope within {t.slope_limit:g}; maps of spread with "
        f"at least {t.spread_share_min:.0%} of their variance in the first two thirds of the degrees"
    )


def large_scale_share(maps: np.ndarray) -> np.ndarray:
    """(...,) share of each map's variance about its area mean at degrees 1 to 2/3 of the
    largest; ``maps`` (..., nlat, nlon) on the equiangular grid."""
    power = angular_power_spectrum(torch.as_tensor(np.asarray(maps, dtype=np.float64))).numpy()
    variance = power * (2 * np.arange(power.shape[-1]) + 1)  # Parseval: (2l + 1) C_l per degree
    top = top_checked_degree(power.shape[-1] - 1)
    return variance[..., 1 : top + 1].sum(axis=-1) / variance[..., 1:].sum(axis=-1)


def white_noise_share(nlat: int) -> float:
    """``large_scale_share`` of white noise (flat C_l) on an ``nlat`` equiangular grid."""
    lmax = default_lmax(nlat)
    return ((top_checked_degree(lmax - 1) + 1) ** 2 - 1) / (lmax**2 - 1)


def spread_map_findings(
    variable: str, shares: np.ndarray, nlat: int, thresholds: Thresholds | None = None
) -> list[str]:
    """The spread-map check (module docstring) of one variable's maps ``shares``, as findings."""
    t = thresholds or Thresholds()
    bad = shares < t.spread_share_min
    if not bad.any():
        return []
    top = top_checked_degree(default_lmax(nlat) - 1)
    return [
        f"{variable}: {int(bad.sum())} of {shares.size} spread maps are speckle: {shares.min():.0%} of their "
        f"variance at degrees 1-{top} (white noise: {white_noise_share(nlat):.0%}; "
        f"synoptic structure: at least {t.spread_share_min:.0%})."
    ]


def spread_map_sentence(shares: np.ndarray, nlat: int) -> str:
    """How large-scale the spread maps shown are, for their caption."""
    top = top_checked_degree(default_lmax(nlat) - 1)
    return (
        f"Spread maps: {shares.min():.0%}-{shares.max():.0%} of their variance about the mean at degrees 1-{top} "
        f"(white noise would put {white_noise_share(nlat):.0%} there)."
    )


def diagnostics_html(scores: xr.Dataset, thresholds: Thresholds | None = None, more: Sequence[str] = ()) -> str:
    """The report's list of what is off (``diagnose``, then ``more`` findings such as the spread
    maps'), or the checks that all passed."""
    findings = [*diagnose(scores, thresholds), *more]
    if not findings:
        return f"<h2>Diagnostics</h2><p>Nothing flagged. Checked: {html.escape(checks_done(scores, thresholds))}.</p>"
    items = "".join(f"<li>{html.escape(s)}</li>" for s in findings)
    return (
        f"<h2>Diagnostics</h2><p>{len(findings)} flagged "
        f"(checked: {html.escape(checks_done(scores, thresholds))}):</p><ul class='diagnostics'>{items}</ul>"
    )


def spectra_sentence(scores: xr.Dataset, lead_index: int = -1) -> str:
    """What the spectra at one lead show, per variable: the range of the members' and the
    ensemble mean's power over the truth's on ``scored_degrees``."""
    members = power_ratio(scores).isel(lead_time=lead_index)
    mean = power_ratio(scores, "spectrum_ensemble_mean").isel(lead_time=lead_index)
    deg = members["degree"].values
    hours = _hours(scores)[lead_index]
    parts = []
    for v in (str(x) for x in scores["variable"].values):
        m, e = members.sel(variable=v).values, mean.sel(variable=v).values
        top = int(np.argmax(np.abs(np.log(m))))
        parts.append(
            f"{v}: members {np.nanmin(m):.2g}-{np.nanmax(m):.2g}x (furthest from 1 at degree {int(deg[top])}), "
            f"ensemble mean {e[-1]:.2g}x at degree {int(deg[-1])}"
        )
    return f"At {hours:g} h, power over the truth's at degrees {int(deg[0])}-{int(deg[-1])}: " + "; ".join(parts) + "."


def rank_sentence(scores: xr.Dataset, lead_index: int = -1) -> str:
    """Each variable's rank-histogram shape at one lead (``rank_shape``), global."""
    hours = _hours(scores)[lead_index]
    parts = []
    for v in (str(x) for x in scores["variable"].values):
        slope, ends = rank_shape(scores["rank_histogram"].sel(variable=v, region="global").values[lead_index])
        parts.append(f"{v} end bins {ends:+.0%} over flat, slope {slope:+.2f}")
    return f"At {hours:g} h: " + "; ".join(parts) + " (U-shaped: ends above flat, under-dispersed; dome: below)."


__all__ = [
    "Thresholds",
    "checks_done",
    "diagnose",
    "diagnostics_html",
    "large_scale_share",
    "outlier_limits",
    "power_ratio",
    "rank_sentence",
    "rank_shape",
    "spectra_sentence",
    "spread_map_findings",
    "spread_map_sentence",
    "white_noise_share",
]
