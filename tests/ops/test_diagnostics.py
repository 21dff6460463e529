"""The report's diagnostics against closed forms and hand-built scores with known defects."""

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from swarmcast.kernels.ensemble_scores import gaussian_outlier_rate
from swarmcast.kernels.sphere import equiangular_latitudes
from swarmcast.ops.verification.diagnostics import (
    Thresholds,
    diagnose,
    diagnostics_html,
    large_scale_share,
    outlier_limits,
    power_ratio,
    rank_sentence,
    rank_shape,
    spectra_sentence,
    spread_map_findings,
    spread_map_sentence,
    white_noise_share,
)

VARIABLES = ["h", "v"]
LEADS = pd.to_timedelta([0, 6, 12, 24, 48], unit="h")
M = 9  # members: 10 ranks, expected outlier rate 0.2


def flat_rank(m: int = M) -> np.ndarray:
    return np.full(m + 1, 1 / (m + 1))


def test_rank_shape_of_flat_u_dome_and_sloped_histograms():
    assert rank_shape(flat_rank()) == pytest.approx((0.0, 0.0), abs=1e-12)
    u = np.array([3, 1, 1, 1, 1, 1, 1, 1, 1, 3], dtype=float)
    slope, ends = rank_shape(u / u.sum())
    assert slope == pytest.approx(0.0, abs=1e-12) and ends == pytest.approx(3 * 10 / 14 - 1)
    dome = np.array([0, 1, 2, 3, 4, 4, 3, 2, 1, 0], dtype=float)
    assert rank_shape(dome / dome.sum())[1] == pytest.approx(-1.0)
    # f = 1 + 0.8 x on x in [-1, 1]: slope 0.8 exactly, ends average to 1
    x = np.linspace(-1, 1, 10)
    slope, ends = rank_shape((1 + 0.8 * x) / 10)
    assert slope == pytest.approx(0.8) and ends == pytest.approx(0.0, abs=1e-12)


def scores(ssr_v48: float = 1.0, power_v: float = 1.0, outliers_v: float = 0.2, rank_v=None) -> xr.Dataset:
    """A global scores store of a calibrated ensemble, with v's 48 h numbers set by the caller."""
    n_lead, n_deg = len(LEADS), 16
    ssr = np.ones((2, 1, n_lead))
    ssr[:, :, 0] = np.nan
    ssr[1, 0, -1] = ssr_v48
    truth = np.broadcast_to(1.0 / (1 + np.arange(n_deg)) ** 3, (2, n_lead, n_deg)).copy()
    members = truth.copy()
    members[1, -1, 8:] *= power_v  # v at 48 h, degrees 8 and up
    outliers = np.full((2, 1, n_lead), 0.2)
    outliers[1, 0, -1] = outliers_v
    ranks = np.broadcast_to(flat_rank(), (2, 1, n_lead, M + 1)).copy()
    if rank_v is not None:
        ranks[1, 0, -1] = rank_v
    return xr.Dataset(
        {
            "ssr": (("variable", "region", "lead_time"), ssr),
            "spectrum_truth": (("variable", "lead_time", "degree"), truth),
            "spectrum_members": (("variable", "lead_time", "degree"), members),
            "spectrum_ensemble_mean": (("variable", "lead_time", "degree"), truth * 0.5),
            "outlier_rate": (("variable", "region", "lead_time"), outliers),
            "outlier_rate_expected": ((), 2 / (M + 1)),
            "rank_histogram": (("variable", "region", "lead_time", "rank"), ranks),
        },
        coords={"variable": VARIABLES, "region": ["global"], "lead_time": LEADS, "degree": np.arange(n_deg)},
    )


def test_a_calibrated_ensemble_is_not_flagged_and_the_page_says_what_was_checked():
    assert diagnose(scores()) == []
    page = diagnostics_html(scores())
    assert "Nothing flagged" in page and "degrees 1-10" in page and "[0.6, 1.5]" in page


@pytest.mark.parametrize(
    ("defect", "expected"),
    [
        (
            {"ssr_v48": 4.5},
            r"^v: spread-skill ratio outside \[0.6, 1.5\] \(over-dispersed.*"
            r"at 1 of 3 leads from 12 h, most at 48 h \(4.5\)",
        ),
        ({"ssr_v48": 0.5}, r"^v: spread-skill ratio outside \[0.6, 1.5\] \(under-dispersed\).*\(0.5\)"),
        (
            {"power_v": 40.0},
            r"^v: members carry more than 3x the truth's power at 1 of 3 leads; "
            r"worst 40x at degree 8, 48 h \(of degrees 1-10\)",
        ),
        ({"power_v": 0.1}, r"^v: members carry less than 1/3 of the truth's power .* worst 0.1x"),
        (
            {"outliers_v": 0.02},
            r"^v: the truth falls outside the ensemble over less of the area than a spread-skill ratio of 1.5 "
            r"gives a Gaussian ensemble of this size \(0.07\d*; consistent: 0.2\) at 1 of 3 leads from 12 h, "
            r"most at 48 h \(0.02; rank histogram dome-shaped, end bins -90% over flat\)",
        ),
        (
            {"outliers_v": 0.45},
            r"^v: the truth falls outside the ensemble over more of the area than a spread-skill ratio of 0.6 "
            r"gives .*\(0.4\d*; consistent: 0.2\) .*most at 48 h \(0.45; rank histogram U-shaped, end bins \+125%",
        ),
        (
            {"rank_v": (1 + 0.8 * np.linspace(-1, 1, M + 1)) / (M + 1)},
            r"^v: rank histogram sloped \(the truth sits mostly on one side: a bias; slope \+0.80 at 48 h\)",
        ),
    ],
)
def test_each_defect_is_flagged_once_with_its_numbers(defect, expected):
    found = diagnose(scores(**defect))
    assert len(found) == 1, found
    assert re.search(expected, found[0]), found[0]


def test_outlier_limits_follow_the_spread_skill_band():
    """An ensemble whose outlier rate is what a Gaussian one at a spread-skill ratio inside the
    band has is not flagged; just outside the band's rates, it is (the page cannot call an
    ensemble calibrated by its spread-skill ratio and U-shaped by its tails at once)."""
    low, high = outlier_limits(scores(), Thresholds())
    assert (low, high) == (pytest.approx(gaussian_outlier_rate(1.5, M)), pytest.approx(gaussian_outlier_rate(0.6, M)))
    assert low < 2 / (M + 1) < high
    for ssr in (0.62, 0.8, 1.2, 1.45):
        assert diagnose(scores(outliers_v=gaussian_outlier_rate(ssr, M))) == [], ssr
    for ssr in (0.57, 1.6):
        assert len(diagnose(scores(outliers_v=gaussian_outlier_rate(ssr, M)))) == 1, ssr


def test_the_spectra_and_rank_sentences_are_computed_from_the_scores():
    s = scores(power_v=40.0, rank_v=np.array([3, 1, 1, 1, 1, 1, 1, 1, 1, 3]) / 14)
    ratio = power_ratio(s).sel(variable="v").isel(lead_time=-1)
    assert float(ratio.max()) == pytest.approx(40.0) and list(ratio["degree"].values) == list(range(1, 11))
    text = spectra_sentence(s)
    assert text.startswith("At 48 h, power over the truth's at degrees 1-10: h: members 1-1x")
    assert "v: members 1-40x (furthest from 1 at degree 8), ensemble mean 0.5x at degree 10" in text
    assert "v end bins +114% over flat, slope +0.00" in rank_sentence(s)


def test_spread_maps_of_white_noise_are_flagged_as_speckle_and_smooth_ones_are_not():
    nlat, nlon = 32, 64
    assert white_noise_share(nlat) == pytest.approx(120 / 255)  # degrees 1-10 of 1-15: sum of 2l + 1
    speckle = np.random.default_rng(0).standard_normal((200, nlat, nlon))
    assert large_scale_share(speckle).mean() == pytest.approx(white_noise_share(nlat), abs=0.01)
    lat = np.deg2rad(equiangular_latitudes(nlat))[:, None]
    lon = np.linspace(0, 2 * np.pi, nlon, endpoint=False)[None, :]
    synoptic = 5 + np.cos(lat) ** 4 * np.cos(4 * lon)  # a wave-number-4 pattern: degrees 4 and up, smooth
    assert large_scale_share(synoptic[None])[0] > 0.99
    shares = large_scale_share(np.stack([synoptic, speckle[0]]))
    (finding,) = spread_map_findings("h", shares, nlat)
    assert finding.startswith(f"h: 1 of 2 spread maps are speckle: {shares[1]:.0%} of their variance at degrees 1-10")
    assert spread_map_findings("h", shares[:1], nlat) == []
    assert spread_map_sentence(shares, nlat).endswith("(white noise would put 47% there).")
    assert "1 flagged" in diagnostics_html(scores(), more=[finding])
