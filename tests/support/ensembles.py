"""A small ensemble store for tests: 2 init times x 2 checkpoints x 8 members (blocks of 4),
5 leads in shards of 2, a 4 x 8 grid, channels h and u; and unit data that encodes where
each value belongs."""

import numpy as np

from swarmcast.ops.ensemble.store import EnsembleLayout, UnitWriter, create_ensemble_store


def layout(**kw) -> EnsembleLayout:
    base = dict(
        init_times=np.array(["2023-06-01T00", "2023-06-02T00"], dtype="datetime64[ns]"),
        lead_times=(np.arange(5) * np.timedelta64(6, "h")).astype("timedelta64[ns]"),
        lat=np.array([90.0, 30.0, -30.0, -90.0]),
        lon=np.arange(8) * 45.0,
        channels=("h", "u"),
        checkpoints=("seed-0", "seed-1"),
        perturbation=np.array([0, 1, 1, 2, 2, 3, 3, 4]),
        sign=np.array([0, 1, -1, 1, -1, 1, -1, 0]),
        member_block=4,
        leads_per_shard=2,
    )
    return EnsembleLayout(**{**base, **kw})


def create(tmp_path, lay=None):
    lay = lay or layout()
    seeds = np.arange(len(lay.init_times) * lay.n_members).reshape(len(lay.init_times), -1) + 1000
    return create_ensemble_store(tmp_path / "ens.zarr", lay, seeds, {"swarmcast_stage": {"k": 1}, "title": "t"}), lay


def unit_data(lay, unit, n_leads, lead0=0):
    """Distinct values encoding (init, member, lead, channel) so any misplacement shows."""
    m = np.arange(
        lay.member_slice(unit.checkpoint, unit.block).start, lay.member_slice(unit.checkpoint, unit.block).stop
    )
    leads = np.arange(lead0, lead0 + n_leads)
    c = np.arange(len(lay.channels))
    v = unit.init * 1e4 + m[:, None, None] * 100 + leads[None, :, None] * 10 + c[None, None, :]
    return np.broadcast_to(v[..., None, None], (len(m), n_leads, len(c), len(lay.lat), len(lay.lon))).astype("f4")


def finished(tmp_path, lay=None):
    """A store (``create``) with every unit written (``unit_data``) and marked done: (path, layout)."""
    path, lay = create(tmp_path, lay)
    for unit in lay.units():
        writer = UnitWriter(path, lay, unit)
        writer.write(unit_data(lay, unit, len(lay.lead_times)))
        writer.finish()
    return path, lay
