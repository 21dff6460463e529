"""`swarmcast bench loader` runs and reports what it promises (no timing assertions)."""

import json

import pytest

from swarmcast.pipelines.cli import main


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_loader_prints_one_json_object_with_a_ratio(ray_session, capsys):
    code = main(["bench", "loader", "nlat=16", "nlon=32", "trajectories=2", "days=2", "epochs=1", "batch_size=8"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(out[-1])
    assert result["bench"] == "loader" and result["windows"] == 2 * 8
    for key in ("ratio", "direct_windows_per_s", "ray_windows_per_s", "sfno_train_samples_per_s"):
        assert result[key] > 0
    assert result["machine"]["cpus"] >= 1


def test_bench_rejects_unknown_parameters(capsys):
    assert main(["bench", "loader", "nlatt=16"]) == 2
    assert "unknown bench parameters ['nlatt']" in capsys.readouterr().err
