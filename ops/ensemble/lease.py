"""One writer per ensemble store: a lease object inside the store, with its owner and a
heartbeat (ARCHITECTURE.md, "One writer per store").

Two runs of the same pipeline into one store would both find the same units not done and
compute every one of them (the bytes agree, the cost doubles, and neither says so). So the
coordinator takes the store's lease before it looks for work and holds it until the stage
ends. The lease is the object ``member_done/lease.json`` (inside the ``member_done`` array's
folder, where zarr and xarray never look): the run's id, host, pid, start time and a heartbeat
that a daemon thread rewrites every ``heartbeat_s`` seconds.

A second run finds the lease held and refuses, naming the owner, or, when asked to (jobs
that ``submit`` and ``schedule`` send do), waits for it. A lease is *stale*, and taken
over with a notice, when its heartbeat is older than ``stale_s`` or when its owner ran on this
host and that process is gone (a killed driver is taken over at once on the machine it ran
on). Taking a lease is an exclusive create (``set_if_not_exists``): on a local filesystem that
is atomic, so of several runs starting together exactly one wins. On object stores zarr has
no exclusive create (a check then a write), so a run that finds its own lease written waits
``settle_s`` and reads it again: a rival whose check raced ours wrote within one round trip,
and then the later write is the owner and the other run backs off.
Taking over a stale lease deletes it only if it is still the one judged stale.

``--overwrite`` replaces a store only after taking its lease too: replacing a store under a
live run would delete the units that run is writing (``live_holder`` lets the plan refuse it
before any work; a run holds the old store's lease while it replaces it).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import TracebackType

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, as_zarr, location

LEASE_KEY = "member_done/lease.json"
HEARTBEAT_S = 30.0
STALE_S = 180.0
POLL_S = 5.0
"""Seconds between looks at a busy lease while waiting for it."""
SETTLE_S = 2.0
"""Seconds a run waits before reading its lease back on a store without exclusive create: far
longer than the round trip within which a racing write lands."""


class StoreBusyError(InputError):
    """Another live run holds the store's lease."""


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: ``started`` and ``heartbeat`` are Unix times in seconds."""

    run: str
    host: str
    pid: int
    what: str
    started: float
    heartbeat: float

    def describe(self, now: float) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return (
            f"{self.what} (pid {self.pid} on {self.host}, started {started}, "
            f"last heartbeat {max(now - self.heartbeat, 0.0):.0f} s ago)"
        )


class StoreLease:
    """The lease of the ensemble store at ``path``, taken with ``take()`` and released when the
    ``with`` block ends (or by ``release()``). ``what`` names the holder in messages, e.g.
    ``"hindcast stage 'hindcast'"``."""

    def __init__(
        self,
        path: str | os.PathLike | Location,
        what: str,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        stale_s: float = STALE_S,
        settle_s: float = SETTLE_S,
    ) -> None:
        if not 0 < heartbeat_s < stale_s:
            raise ValueError(f"the heartbeat ({heartbeat_s} s) must be positive and shorter than stale_s ({stale_s} s)")
        self.path, self.what = location(path), what
        self.heartbeat_s, self.stale_s, self.settle_s = heartbeat_s, stale_s, settle_s
        self.run = uuid.uuid4().hex
        self.held = False
        self.lost = False
        """Set by the heartbeat when the lease is no longer this run's (taken over as stale)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: zarr.abc.store.Store | None = None

    def take(self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> str | None:
        """Take the lease; returns a notice when a stale one was taken over, else None.

        When a live run holds it: raises ``StoreBusyError`` naming the owner, or with ``wait``
        polls until that run releases it or goes stale (``on_wait(message)`` is called once,
        naming whom it waits for). Scheduled jobs wait: a tick that comes while the last one
        still writes then finds that work done instead of failing.
        """
        self._store = zarr.open_group(as_zarr(self.path), mode="r+", use_consolidated=False).store
        notice, waiting, races = None, False, 0
        while True:
            now = time.time()
            me = LeaseOwner(self.run, socket.gethostname(), os.getpid(), self.what, now, now)
            sync(self._store.set_if_not_exists(LEASE_KEY, _encode(me)))
            holder = self._read()
            if holder is not None and holder.run == self.run and not _exclusive(self._store):
                time.sleep(self.settle_s)  # a rival's racing write lands meanwhile: read again
                holder = self._read()
            if holder is not None and holder.run == self.run:
                self.held = True
                self._thread = threading.Thread(target=self._beat, args=(me,), name="store-lease", daemon=True)
                self._thread.start()
                return notice
            if holder is not None and not self._stale(holder, now):
                if not wait:
                    raise StoreBusyError(
                        f"{self.path} is being written by {holder.describe(now)}; two runs would compute every "
                        f"unit twice. Wait for it to end; if it is dead, rerun after its lease goes stale "
                        f"({self.stale_s:.0f} s without a heartbeat)"
                    )
                if not waiting and on_wait is not None:
                    on_wait(f"{self.path}: waiting for {holder.describe(now)} to finish writing it")
                waiting = True
                time.sleep(min(self.heartbeat_s, POLL_S))
                continue
            what = "an unreadable lease" if holder is None else f"the stale lease of {holder.describe(now)}"
            notice = f"{self.path}: took over {what}"
            if self._read() == holder:  # still the one judged stale: no one took it over meanwhile
                sync(self._store.delete(LEASE_KEY))
            races += 1
            if races > 3:  # another taker won the race for a stale lease each time
                raise StoreBusyError(f"{self.path}: other runs keep taking the lease; is another run starting now?")

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if this run still holds it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.held and self._store is not None:
            holder = self._read()
            if holder is not None and holder.run == self.run:
                sync(self._store.delete(LEASE_KEY))
        self.held = False

    def __enter__(self) -> StoreLease:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def _beat(self, me: LeaseOwner) -> None:
        assert self._store is not None
        while not self._stop.wait(self.heartbeat_s):
            holder = self._read()
            if holder is None or holder.run != self.run:
                self.lost = True  # taken over (or being taken): never write over the new owner's lease
                return
            me = LeaseOwner(**{**asdict(me), "heartbeat": time.time()})
            sync(self._store.set(LEASE_KEY, _encode(me)))

    def _read(self) -> LeaseOwner | None:
        assert self._store is not None
        raw = sync(self._store.get(LEASE_KEY, prototype=default_buffer_prototype()))
        return None if raw is None else _decode(raw.to_bytes())

    def _stale(self, holder: LeaseOwner, now: float) -> bool:
        return _stale(holder, now, self.stale_s)


def live_holder(path: str | os.PathLike | Location, *, stale_s: float = STALE_S) -> LeaseOwner | None:
    """The live run holding the lease of the store at ``path``, or None (no lease, an
    unreadable one, or a stale one that the next run will take over)."""
    try:
        store = zarr.open_group(as_zarr(location(path)), mode="r", use_consolidated=False).store
    except (zarr.errors.NodeNotFoundError, FileNotFoundError):
        return None
    raw = sync(store.get(LEASE_KEY, prototype=default_buffer_prototype()))
    holder = None if raw is None else _decode(raw.to_bytes())
    return None if holder is None or _stale(holder, time.time(), stale_s) else holder


def _stale(holder: LeaseOwner, now: float, stale_s: float) -> bool:
    if now - holder.heartbeat > stale_s:
        return True
    return holder.host == socket.gethostname() and not _alive(holder.pid)


def _exclusive(store: zarr.abc.store.Store) -> bool:
    """Whether ``set_if_not_exists`` is an atomic exclusive create on ``store``."""
    return isinstance(store, zarr.storage.LocalStore | zarr.storage.MemoryStore)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _decode(raw: bytes) -> LeaseOwner | None:
    try:
        fields = json.loads(raw)
        return LeaseOwner(
            run=str(fields["run"]),
            host=str(fields["host"]),
            pid=int(fields["pid"]),
            what=str(fields["what"]),
            started=float(fields["started"]),
            heartbeat=float(fields["heartbeat"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _encode(owner: LeaseOwner) -> zarr.core.buffer.Buffer:
    return default_buffer_prototype().buffer.from_bytes(json.dumps(asdict(owner), sort_keys=True).encode())


__all__ = [
    "HEARTBEAT_S",
    "LEASE_KEY",
    "SETTLE_S",
    "STALE_S",
    "LeaseOwner",
    "StoreBusyError",
    "StoreLease",
    "live_holder",
]
