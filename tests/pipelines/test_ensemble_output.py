"""Two runs of one pipeline creating its ensemble store at the same moment (two scheduled jobs
started together): the second finds the first's store published between its look and its
create, and goes on with it when it was made by the same config."""

import numpy as np
import pytest

from support.ensembles import layout
from swarmcast.ops.ensemble.store import create_ensemble_store, store_fingerprint
from swarmcast.ops.storage import location
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.output import open_ensemble_output

FINGERPRINT = {"kind": "hindcast", "lead_hours": 24, "pipeline_seed": 0}


def _seeds(lay):
    return np.arange(len(lay.init_times) * lay.n_members).reshape(len(lay.init_times), -1)


def _open_while_a_rival_publishes(tmp_path, rival_fingerprint):
    lay, out = layout(), location(tmp_path / "ens.zarr")

    def rival_publishes():  # runs after this run saw no store, just before it creates one
        create_ensemble_store(out, lay, _seeds(lay), {"swarmcast_stage": rival_fingerprint, "title": "rival"})

    pending = open_ensemble_output(
        out, lay, _seeds(lay), StageContext(base=tmp_path), FINGERPRINT, {"title": "t"}, before_create=rival_publishes
    )
    return lay, out, pending


def test_a_store_the_same_config_published_meanwhile_is_joined(tmp_path):
    lay, out, pending = _open_while_a_rival_publishes(tmp_path, FINGERPRINT)
    assert pending == sorted(lay.units())  # nothing done yet: every unit is still to do
    assert store_fingerprint(out) == FINGERPRINT


def test_a_store_another_config_published_meanwhile_is_refused_and_kept(tmp_path):
    other = {**FINGERPRINT, "lead_hours": 48}
    with pytest.raises(ConfigError, match="created meanwhile by another run of a different config"):
        _open_while_a_rival_publishes(tmp_path, other)
    assert store_fingerprint(location(tmp_path / "ens.zarr")) == other  # the rival's store untouched
