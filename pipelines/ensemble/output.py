"""Creating or reopening the ensemble store a stage fills (``hindcast``, ``sample-diffusion``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from swarmcast.ops import __version__
from swarmcast.ops.ensemble.done_flags import done_units
from swarmcast.ops.ensemble.extend import extend_init_times, extension_in_progress, grown_init_times, stored_init_times
from swarmcast.ops.ensemble.lease import StoreLease
from swarmcast.ops.ensemble.receipts import forget_done
from swarmcast.ops.ensemble.store import EnsembleLayout, Unit, create_ensemble_store, store_fingerprint
from swarmcast.ops.ensemble.verify import check_store
from swarmcast.ops.errors import OutputExistsError
from swarmcast.ops.storage import Location, as_zarr, output_exists
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.context import StageContext


def open_ensemble_output(
    out: Location,
    layout: EnsembleLayout,
    seeds: np.ndarray,
    ctx: StageContext,
    fingerprint: dict,
    attrs: dict,
    *,
    extra: Callable[[Path], None] | None = None,
    before_create: Callable[[], None] | None = None,
    run_settings: frozenset[str] = frozenset(),
    lease: StoreLease | None = None,
    grow: Callable[[np.ndarray], tuple[EnsembleLayout, np.ndarray]] | None = None,
) -> list[Unit]:
    """Create an ensemble store (or reopen the one the same config made); its units still to do.

    A store made by another config is refused unless ``--overwrite``, which replaces it only
    after taking its lease (a live run writing it is refused, or waited for). Units marked done whose
    shards no longer match their receipts (deleted, truncated) are named, unmarked and returned
    with the units still to do (ARCHITECTURE.md, "Stores that verify themselves"). ``seeds``: int
    (n_init, n_members); ``extra(staging_folder)`` adds stage-specific arrays before the
    metadata is consolidated (ARCHITECTURE.md, "The ensemble store"). ``before_create()`` runs
    just before a new store is created: stages start their actors there, so checkpoints load
    while the metadata is written. ``run_settings``: keys a store written before they left the
    fingerprint may still record (``StageConfig.RUN_SETTINGS``); they are ignored when comparing.
    ``lease``: taken once the store exists, before anything is read or repaired
    (``swarmcast.ops.ensemble.lease``); the caller releases it when the stage ends.

    ``grow(init_times) -> (layout, seeds)``: the stage's campaign store grows (ARCHITECTURE.md,
    "Growing campaigns"). A store whose config differs only in ``init_times`` is then reopened,
    the wanted init times it lacks are appended after its own (``swarmcast.ops.ensemble.extend``),
    and the units to do are those of every init time it holds; ``grow`` re-plans the stage for
    them and returns the layout the units refer to.
    """
    fingerprint = json.loads(json.dumps(fingerprint))
    full = {
        "Conventions": "CF-1.10",
        "title": attrs.get("title", "swarmcast ensemble"),
        "source": f"swarmcast {__version__}",
        "history": f"written by the {fingerprint.get('kind', 'ensemble')} stage of swarmcast {__version__}",
        "swarmcast_stage": fingerprint,
        "pipeline": json.dumps(ctx.pipeline_raw),
        **{k: v for k, v in attrs.items() if k != "title"},
    }
    existed = output_exists(out) and not ctx.overwrite
    if existed:
        recorded = _without(store_fingerprint(out), run_settings)
        if recorded != fingerprint and (grow is None or not same_campaign(recorded, fingerprint)):
            kind = fingerprint.get("kind", "stage")
            keys = ", ".join(differing_keys(recorded, fingerprint)) if isinstance(recorded, dict) else "everything"
            raise ConfigError(
                f"{out} was made by a different {kind} config or checkpoints (differing: {keys}); pass --overwrite"
            )
    else:
        replaced = None
        if output_exists(out) and lease is not None:  # --overwrite: never under a live run
            replaced = StoreLease(out, lease.what)
            notice = replaced.take(wait=ctx.wait_for_store, on_wait=print)
            if notice:
                print(notice)
        try:
            if before_create is not None:  # may refuse (a ConfigError): nothing is created then
                before_create()
            create_ensemble_store(out, layout, seeds, full, overwrite=ctx.overwrite, extra=extra)
        except OutputExistsError:
            # another run published the store between our look and our create (two jobs of one
            # pipeline started together): not an error; its fingerprint decides below
            if ctx.overwrite:
                raise
        finally:
            if replaced is not None:  # deletes its lease only where it is still this run's
                replaced.release()
        if _without(store_fingerprint(out), run_settings) != fingerprint:  # made first, differently
            raise ConfigError(f"{out} was created meanwhile by another run of a different config")
    if lease is not None:  # before looking for work: a second run must not compute it too
        notice = lease.take(wait=ctx.wait_for_store, on_wait=print)
        if notice:
            print(notice)
    wanted = layout.init_times
    appended = 0
    if existed and grow is not None:
        layout, appended = _grow(out, layout, full, grow, extra)
    done = done_units(out, layout)
    check = check_store(out, layout, done)
    if check.damage:  # shards lost after their units finished: name them, then compute them again
        print(f"{out}: {len(check.damage)} finished units lost shards since they were written; computing them again:")
        for line in check.lines():
            print(f"  {line}")
        forget_done(zarr.open_group(as_zarr(out), mode="r+", use_consolidated=False), layout, check.damage)
    pending = sorted(set(layout.units()) - (done - set(check.damage)))
    if existed and grow is not None and not appended:
        where = np.searchsorted(layout.init_times, wanted)
        if not any(u.init in set(where.tolist()) for u in pending):
            dates = ", ".join(str(t.astype("datetime64[h]")) for t in wanted[:3]) + (" ..." if len(wanted) > 3 else "")
            print(f"{out}: already holds init time {dates}, all done; no new dates to append")
    return pending


GROWS = frozenset({"init_times"})
"""Fingerprint keys a campaign store may differ in: it grows by init times."""


def _grow(
    out: Location,
    layout: EnsembleLayout,
    attrs: dict,
    grow: Callable[[np.ndarray], tuple[EnsembleLayout, np.ndarray]],
    extra: Callable[[Path], None] | None,
) -> tuple[EnsembleLayout, int]:
    """(the layout of every init time the store holds once the wanted ones are appended, how
    many were appended); finishes an extension a killed run left first."""
    stored = stored_init_times(out)
    union = grown_init_times(stored, layout.init_times, str(out))
    layout, seeds = grow(union)
    if len(union) == len(stored) and not extension_in_progress(out):
        return layout, 0
    old = zarr.open_group(as_zarr(out), mode="r").attrs.get("history", "")
    line = f"{time.strftime('%Y-%m-%d', time.gmtime())}: init times appended by swarmcast {__version__}"
    added = extend_init_times(out, layout, seeds, attrs | {"history": f"{old}\n{line}".strip()}, extra=extra)
    first, last = (union[i].astype("datetime64[h]") for i in (len(union) - added, -1))
    print(f"{out}: appended {added} init times ({first} to {last}) after the {len(union) - added} it held")
    return layout, added


def same_campaign(recorded: object, fingerprint: dict, ignored: frozenset[str] = frozenset()) -> bool:
    """Whether a store's recorded fingerprint is ``fingerprint`` but for the keys a campaign
    grows by (``GROWS``) and ``ignored`` (run settings): the store may be reopened and grown."""
    drop = GROWS | ignored
    return isinstance(recorded, dict) and _without(recorded, drop) == _without(fingerprint, drop)


def differing_keys(a: object, b: object, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two fingerprints (nested dicts compared key by key)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += differing_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _without(recorded: dict | None, keys: frozenset[str]) -> dict | None:
    return None if recorded is None else {k: v for k, v in recorded.items() if k not in keys}


__all__ = ["GROWS", "differing_keys", "open_ensemble_output", "same_campaign"]
