"""``score`` and ``report`` stages after a real hindcast: numbers against in-memory xarray, plots, reruns."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from support.browser import CHROMEDRIVER, CHROMIUM, headless_chromium
from support.cf_check import cf_failures, to_netcdf
from support.checkpoints import write_untrained_checkpoint
from support.stages import SMALL_HINDCAST
from swarmcast.kernels.sphere import lat_cell_area_weights
from swarmcast.ops.verification.diagnostics import diagnose, large_scale_share, spectra_sentence, spread_map_sentence
from swarmcast.pipelines.cli import main
from swarmcast.pipelines.config import ConfigError, parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

HINDCAST = SMALL_HINDCAST
SCORE = {"kind": "score", "regions": ["global", "tropics"], "bootstrap": 3}
REPORT = {"kind": "report"}


def run(base: Path, stages: list[dict], overwrite: bool = False) -> list[dict]:
    raw = {"name": "verify", "seed": 1, "stages": stages}
    return run_pipeline(parse_pipeline(raw), StageContext(base=base, seed=1, overwrite=overwrite, pipeline_raw=raw))


@pytest.fixture(scope="module")
def verified(ray_session, swe_store, tmp_path_factory):
    base = tmp_path_factory.mktemp("verify")
    (base / "data.zarr").symlink_to(swe_store)
    for s in (0, 1):
        write_untrained_checkpoint(base / "checkpoints" / f"seed-{s}", swe_store, s)
    results = run(base, [HINDCAST, SCORE, REPORT])
    return base, results


def check_scores_against_memory(base: Path, variables: tuple[str, ...]) -> None:
    """Scores of ``base/scores.zarr`` equal plain numpy over the loaded ensemble and truth."""
    scores = xr.open_zarr(base / "scores.zarr")
    assert scores["crps"].dims == ("variable", "region", "lead_time")
    ens = xr.open_zarr(base / "hindcast.zarr").load()
    truth = xr.open_zarr(base / "data.zarr").load()
    w = lat_cell_area_weights(ens["lat"].values)[:, None]
    m = ens.sizes["member"]
    for v in variables:
        for j, lead in enumerate(ens["lead_time"].values):
            # plain numpy over the loaded arrays: truth picked by valid time, O(M^2) CRPS
            x = ens[v].isel(lead_time=j).values.astype(np.float64)  # (init, member, lat, lon)
            y = np.stack([truth[v].sel(time=t + lead).values for t in ens["init_time"].values]).astype(np.float64)
            wmean = lambda f: (f * w).sum() / (w.sum() * f.shape[0] * f.shape[-1])  # noqa: E731
            pairs = np.abs(x[:, :, None] - x[:, None, :]).sum(axis=(1, 2))
            crps = np.abs(x - y[:, None]).mean(axis=1) - pairs / (2 * m * (m - 1))
            mse = wmean((x.mean(axis=1) - y) ** 2)
            var = wmean(x.var(axis=1, ddof=1))
            got = scores.sel(variable=v, region="global").isel(lead_time=j)
            tol = {"rtol": 1e-6, "atol": 1e-9 * np.abs(y).max()}
            np.testing.assert_allclose(float(got["crps"]), wmean(crps), **tol)
            np.testing.assert_allclose(float(got["rmse"]), np.sqrt(mse), **tol)
            np.testing.assert_allclose(float(got["spread"]), np.sqrt(var), **tol)
            if j:  # at lead 0 the +/- pairs centre exactly on the analysis: no error to divide by
                np.testing.assert_allclose(float(got["ssr"]), np.sqrt((m + 1) / m * var / mse), rtol=1e-6)
            # breakdowns: each init time alone, each checkpoint's members alone, the two references
            per_init = [wmean(crps[k : k + 1]) for k in range(len(crps))]
            np.testing.assert_allclose(got["crps_per_init"].values, per_init, **tol)
            for c in ("seed-0", "seed-1"):
                xc = x[:, ens["checkpoint"].values == c]
                mc = xc.shape[1]
                pc = np.abs(xc[:, :, None] - xc[:, None, :]).sum(axis=(1, 2))
                crps_c = np.abs(xc - y[:, None]).mean(axis=1) - pc / (2 * mc * (mc - 1))
                np.testing.assert_allclose(float(got["crps_per_checkpoint"].sel(checkpoint=c)), wmean(crps_c), **tol)
                rmse_c = np.sqrt(wmean((xc.mean(axis=1) - y) ** 2))
                np.testing.assert_allclose(float(got["rmse_per_checkpoint"].sel(checkpoint=c)), rmse_c, **tol)
            y0 = np.stack([truth[v].sel(time=t).values for t in ens["init_time"].values]).astype(np.float64)
            np.testing.assert_allclose(float(got["persistence_rmse"]), np.sqrt(wmean((y0 - y) ** 2)), **tol)
            clim = truth[v].values.astype(np.float64).mean(axis=0)
            np.testing.assert_allclose(float(got["climatology_crps"]), wmean(np.abs(clim - y)), **tol)
    assert json.loads(scores.attrs["swarmcast_stage"])["kind"] in ("score", "hindcast")  # offline or online
    np.testing.assert_allclose(scores["rank_histogram"].sum("rank").values, 1.0)


def test_scores_equal_the_same_numbers_computed_in_memory(verified):
    base, results = verified
    assert results[1]["members"] == 10 and results[1]["variables"] == ["h", "u", "v", "vo"]
    check_scores_against_memory(base, ("h", "vo"))


def test_report_folder_has_readable_plots_and_an_index(verified):
    base, results = verified
    folder = base / "report"
    index = (folder / "index.html").read_text()
    images = re.findall(r"<img src='([^']+)'>", index)
    assert {"scores_vs_lead.png", "rank_histograms.png", "spectra.png", "skill_vs_size.png", "maps_h.png"} <= set(
        images
    )
    assert {"baselines.png", "breakdowns.png"} <= set(images)
    assert index.count("<td>seed-0</td>") == 4 and index.count("<td>seed-1</td>") == 4  # per variable
    assert "<th>SSR</th>" in index
    for name in images:
        img = np.asarray(Image.open(folder / name).convert("L"), dtype=float)
        assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 10  # drawn, not blank
    assert "bred-vector" in index  # the config that produced it
    # the diagnostics and the spectra caption are the ones the scores give, not fixed text
    scores = xr.open_zarr(base / "scores.zarr").load()
    found = diagnose(scores)
    assert "<h2>Diagnostics</h2>" in index and all(html.escape(f) in index for f in found)
    assert ("Nothing flagged" in index) == (not found)
    assert html.escape(spectra_sentence(scores)) in index and "keep the truth's small-scale power" not in index
    # the maps' caption measures the spread maps drawn (first and last init; leads 1, middle, last)
    h = xr.open_zarr(base / "hindcast.zarr")["h"]
    leads = sorted({1, h.sizes["lead_time"] // 2, h.sizes["lead_time"] - 1})
    picked = h.isel(init_time=[0, -1], lead_time=leads).transpose("init_time", "lead_time", "member", "lat", "lon")
    drawn = picked.values.astype(np.float64).std(axis=2, ddof=1)
    sentence = spread_map_sentence(large_scale_share(drawn.reshape(-1, *drawn.shape[-2:])), h.sizes["lat"])
    assert html.escape(sentence) in index
    assert results[2]["index"] == str(folder / "index.html")
    assert not (base / "report.partial").exists()


def test_second_run_skips_and_a_changed_config_is_refused(verified):
    base, _ = verified
    before = (base / "scores.zarr" / "zarr.json").stat().st_mtime_ns
    results = run(base, [HINDCAST, SCORE, REPORT])
    assert [r.get("skipped", False) for r in results[1:]] == [True, True]
    assert (base / "scores.zarr" / "zarr.json").stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="already exists"):
        run(base, [HINDCAST, {**SCORE, "bootstrap": 4}])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variables": ["t2m"]}, r"variables: \['t2m'\] are not in both"),
        ({"ensemble_sizes": [4, 64]}, r"ensemble_sizes: .* must lie in 1\.\.10"),
        ({"regions": ["arctic"]}, "regions"),
        ({"forecast": "data.zarr"}, "not an ensemble store"),
    ],
)
def test_bad_score_configs_fail_with_the_key(verified, change, message):
    base, _ = verified
    with pytest.raises(ConfigError, match=message):
        run(base, [{**SCORE, "output": "other-scores.zarr", **change}])
    assert not (base / "other-scores.zarr").exists()


def test_truth_without_the_valid_times_is_refused(verified, tmp_path):
    base, _ = verified
    truth = xr.open_zarr(base / "data.zarr")
    truth.isel(time=slice(0, 8)).to_zarr(tmp_path / "short.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(ConfigError, match="truth: the truth has no data"):
        run(base, [{**SCORE, "truth": str(tmp_path / "short.zarr"), "output": str(tmp_path / "s.zarr")}])


def test_a_truth_with_nan_at_a_valid_time_is_refused_or_skipped_when_asked(verified, tmp_path, capsys):
    """Before, 50 NaN points in the truth gave NaN CRPS, exit 0, without a word."""
    base, _ = verified
    truth = xr.open_zarr(base / "data.zarr").load()
    t = np.datetime64("2001-01-02T06", "ns")  # valid at lead 12 h, 6 h and 0 h of the three inits
    h = truth["h"].values
    h[list(truth["time"].values).index(t), :5, :10] = np.nan  # 50 points
    for v in truth.variables.values():
        v.encoding.clear()
    truth.to_zarr(tmp_path / "holey.zarr", zarr_format=3, consolidated=False)
    score = {**SCORE, "truth": str(tmp_path / "holey.zarr"), "output": str(tmp_path / "s.zarr"), "spectra": False}
    size = h[0].size
    with pytest.raises(
        ConfigError,
        match=rf"truth: a valid time scored against is not usable: h at 2001-01-02T06:00: 50 of {size} points NaN",
    ):
        run(base, [score])
    assert not (tmp_path / "s.zarr").exists()
    run(base, [{**score, "nonfinite_truth": "skip"}])
    assert "h: 3 of 9 blocks (init time, lead) left out" in capsys.readouterr().out
    got = xr.open_zarr(tmp_path / "s.zarr").load()
    lead = got["lead_time"].values.astype("timedelta64[h]").astype(int)
    skipped = got["truth_blocks_skipped"].sel(variable="h")
    assert dict(zip(lead, skipped.values.tolist(), strict=True)) == {0: 1, 6: 1, 12: 1}
    assert int(got["truth_blocks_skipped"].sel(variable="u").sum()) == 0
    assert np.isfinite(got["crps"]).all() and np.isfinite(got["rank_histogram"]).all()


def test_demo_ends_with_its_report_and_scores_its_own_store(ray_session, tmp_path, capsys):
    """The shipped demo pipeline, shrunk by overrides only, runs to the report it promises."""
    small = ["data.grid.nlat=16", "data.grid.nlon=32", "data.days=27", "train.train.epochs=1"]
    # one epoch makes no checkpoint that carries perturbations: the growth gate, tested on its own
    # (test_hindcast_inputs), would refuse it, so this run of the plumbing turns it off
    gate_off = "hindcast.perturbation.growth_check=false"
    code = main(["demo", "--out", str(tmp_path / "demo"), *small, "hindcast.actors.cpus=0.5", gate_off])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    index = tmp_path / "demo" / "report" / "index.html"
    assert lines[-1] == f"verification report: {index.resolve()}" and index.exists()
    check_scores_against_memory(tmp_path / "demo", ("h", "u"))


def readme_analysis() -> str:
    """The Python block of the README's "Analysing the outputs" section."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("## Analysing the outputs", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_analysis_runs_as_written_on_real_outputs(verified, tmp_path, monkeypatch):
    """Every line of the README's analysis on a real hindcast and its scores, each result
    checked against plain numpy over the loaded store."""
    base, _ = verified
    (tmp_path / "swarmcast-demo").symlink_to(base)
    monkeypatch.chdir(tmp_path)
    code = readme_analysis()
    # the demo's dates are not this store's: only the valid time is swapped for one it holds
    assert code.count('"2003-01-13T00"') == 1
    code = code.replace('"2003-01-13T00"', '"2001-01-02T06"')
    got: dict = {}
    exec(compile(code, "README.md", "exec"), got)

    plain = xr.open_zarr(base / "hindcast.zarr").load()
    h, ckpt, sign = plain["h"], plain["checkpoint"].values, plain["sign"].values
    np.testing.assert_array_equal(got["seed0"].values, h.values[:, ckpt == "seed-0"])
    np.testing.assert_allclose(
        got["per_checkpoint"].sel(checkpoint="seed-1").values, h.values[:, ckpt == "seed-1"].mean(axis=1), rtol=1e-6
    )
    np.testing.assert_array_equal(got["control"].values, h.values[:, sign == 0])
    assert got["control"].sizes["member"] == 2 and set(got["control"].perturbation.values) == {0}
    np.testing.assert_array_equal(got["plus"].perturbation.values, got["minus"].perturbation.values)
    np.testing.assert_array_equal(got["plus"].values, h.values[:, sign == 1])
    # valid at 2001-01-02T06: init 2001-01-01T18 at +12 h, 2001-01-02T00 at +6 h, 2001-01-02T06 at 0 h
    valid = got["valid"]
    assert valid["lead_time"].values.astype("timedelta64[h]").astype(int).tolist() == [12, 6, 0]
    for k, init in enumerate(valid["init_time"].values):
        np.testing.assert_array_equal(
            valid["h"].values[k], h.sel(init_time=init, lead_time=valid["lead_time"].values[k]).values
        )
    np.testing.assert_allclose(got["deep"].values, (h.values > 10_000).mean(axis=1))
    i, j = int(np.abs(plain.lat.values - 40).argmin()), int(np.abs(plain.lon.values - 255).argmin())
    np.testing.assert_array_equal(got["point"].values, h.values[..., i, j])
    scores = xr.open_zarr(base / "scores.zarr")
    np.testing.assert_array_equal(got["crps"].values, scores["crps"].sel(variable="h", region="global").values)
    # the labels are real indexes, not dask arrays (what plain open_zarr gives)
    assert not hasattr(got["ens"]["checkpoint"].data, "dask")
    with pytest.raises(KeyError, match="no forecast in this store is valid at 2001-02-01"):
        got["ens"].swarmcast.at_valid_time("2001-02-01")


@pytest.mark.parametrize("store", ["data.zarr", "hindcast.zarr", "scores.zarr"])
def test_every_store_passes_the_cf_checker_and_names_no_machine_path(verified, tmp_path, store):
    base, _ = verified
    ds = xr.open_zarr(base / store)
    if "init_time" in ds.dims:
        ds = ds.isel(init_time=[0])
    # CF recommends, and does not require, T, Z, Y, X as the last dims: forecast stores lead with
    # init_time (WeatherBench2 and earth2studio do too), so reads of one init time are contiguous
    tolerated = ("§2.4 Dimensions",) if store == "hindcast.zarr" else ()
    failures = cf_failures(to_netcdf(ds, tmp_path / f"{store}.nc"), tolerated)
    assert not failures, "\n".join(failures)
    text = json.dumps(ds.attrs) + json.dumps({k: v.attrs for k, v in ds.variables.items()})
    assert str(base) not in text and str(Path.home()) not in text


def test_inspect_speaks_in_dates_hours_and_members_and_knows_checkpoints_and_reports(verified, tmp_path, capsys):
    base, _ = verified
    code = main(["inspect", str(base / "hindcast.zarr")])
    out = capsys.readouterr().out
    assert code == 0
    assert "init_time  3: 2001-01-01T18:00 to 2001-01-02T06:00 every 6 h" in out
    assert "lead_time  3: 0 h to 12 h every 6 h" in out and "checkpoint 2: seed-0, seed-1, 5 members each" in out
    assert "h              (init_time, member, lead_time, lat, lon) float32 [m] Fluid layer depth" in out
    assert "shards of 5 members x 3 leads, tiles 4 x 4 over 3 lead(s), a point reads 1/16" in out

    assert main(["inspect", str(base / "checkpoints")]) == 0
    out = capsys.readouterr().out
    meta = json.loads((base / "checkpoints" / "seed-1" / "checkpoint.json").read_text())
    assert out.startswith(f"{base / 'checkpoints'}: 2 checkpoint(s)")
    row = [line.split() for line in out.splitlines() if line.strip().startswith("model 48h")][-1]  # seed-1's
    want = [meta["validation_rmse"]["48h"][c] for c in ("h", "u", "v", "vo")]
    np.testing.assert_allclose([float(x) for x in row[2:]], want, rtol=1e-3)

    report = tmp_path / "report"
    shutil.copytree(base / "report", report)
    (report / "spectra.png").unlink()
    assert main(["inspect", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"report 'swarmcast ensemble verification', {len(list(report.glob('*.png')))} figures" in out
    assert "10 members, 3 init times, forecast hindcast.zarr, truth data.zarr." in out
    assert "index.html names 1 figures that are missing: spectra.png" in out

    assert main(["inspect", str(tmp_path)]) == 2
    assert "not a Zarr store, a checkpoint folder (checkpoint.json) or a report folder (index.html)" in (
        capsys.readouterr().err
    )


def test_report_compares_two_runs_with_different_perturbations_from_the_command_line(verified, tmp_path, capsys):
    """A second hindcast of the same checkpoints with 4 times the bred-vector amplitude, scored,
    then `swarmcast report --compare`: the page names where the runs differ significantly."""
    base, _ = verified
    # 4x the amplitude on purpose: members ~3x their RMSE apart, which the growth gate refuses
    wide_perturbation = {**HINDCAST["perturbation"], "amplitude_factor": 1.4, "growth_check": False}
    wide = {**HINDCAST, "output": "wide.zarr", "perturbation": wide_perturbation}
    run(base, [wide, {**SCORE, "forecast": "wide.zarr", "output": "wide-scores.zarr"}])
    code = main(
        [
            "report",
            str(base / "wide-scores.zarr"),
            "--compare",
            str(base / "scores.zarr"),
            "--output",
            str(tmp_path / "cmp"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    index = (tmp_path / "cmp" / "index.html").read_text()
    assert "comparison.png" in index and (tmp_path / "cmp" / "comparison.png").is_file()
    # the page's verdict is the one computed from the two stores
    from swarmcast.ops.verification import report_breakdowns as rb

    a, b = xr.open_zarr(base / "scores.zarr").load(), xr.open_zarr(base / "wide-scores.zarr").load()
    cmp = rb.compare(a, b)
    for sentence in rb.comparison_findings(cmp, ("scores.zarr", "wide-scores.zarr")):
        assert html.escape(sentence) in index
    diff = (b["crps_per_init"] - a["crps_per_init"]).sel(region="global").mean("init_time")
    np.testing.assert_allclose(cmp["difference"].values, diff.values, rtol=1e-9)
    # an existing report is refused without --overwrite
    assert main(["report", str(base / "wide-scores.zarr"), "--output", str(tmp_path / "cmp")]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="no headless Chromium (.ci/run installs it)")
def test_the_report_page_loads_every_image_and_its_controls_redraw_the_plot_in_a_browser(verified):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, _ = verified
    scores = xr.open_zarr(base / "scores.zarr").load()
    with headless_chromium() as browser:
        browser.get((base / "report" / "index.html").as_uri())
        images = browser.find_elements(By.TAG_NAME, "img")
        assert len(images) >= 8
        for img in images:  # every figure resolved and decoded
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe

        def shown() -> tuple[str, str]:
            ensemble = browser.find_element(By.CSS_SELECTOR, "#score-plot path.line[data-name='ensemble']")
            return ensemble.get_attribute("d"), browser.find_element(By.ID, "score-at-lead").text

        # the numbers at the chosen lead are the store's
        Select(browser.find_element(By.ID, "pick-variable")).select_by_visible_text("u")
        Select(browser.find_element(By.ID, "pick-region")).select_by_visible_text("tropics")
        Select(browser.find_element(By.ID, "pick-lead")).select_by_visible_text("6 h")
        _, text_u = shown()
        want = float(scores["crps"].sel(variable="u", region="tropics").isel(lead_time=1))
        assert text_u.startswith("at 6 h: ensemble "), text_u
        assert float(text_u.split()[4].rstrip(",")) == pytest.approx(want, rel=1e-3)  # 4 digits shown
        assert "persistence" in text_u and "climatology" in text_u and "interval" in text_u
        assert "90% interval over the 3 init dates" in browser.find_element(By.TAG_NAME, "body").text
        # each control changes what is drawn
        for control, choice in (("pick-variable", "vo"), ("pick-score", "rmse"), ("pick-region", "global")):
            before = shown()
            Select(browser.find_element(By.ID, control)).select_by_visible_text(choice)
            assert shown() != before, control
