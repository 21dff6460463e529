"""Settings of the embedded shallow-water dataset (``swarmcast.ops.data.swe`` simulates it).

Kept apart from the simulator, which imports torch and torch-harmonics, so a pipeline's
``swe-dataset`` stage is checked and planned without them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

SWE_CHANNELS = ("h", "u", "v", "vo")
# Adams–Bashforth 3 is stable for oscillations with omega*dt below ~0.72. The fastest resolved
# oscillation is a gravity wave (c = sqrt(g * 10 km) ~ 313 m/s, plus advection) at the
# truncation wavenumber: omega_max ~ _MAX_WAVE_SPEED * lmax / R. We keep omega_max*dt <= 0.5.
_MAX_WAVE_SPEED = 350.0
_EARTH_RADIUS = 6.37122e6
_STABLE_OMEGA_DT = 0.5


@dataclass(frozen=True)
class SWEConfig:
    """Parameters of a shallow-water dataset; ``asdict`` of it is stored in the dataset attrs."""

    nlat: int = 32
    """Latitudes of the equiangular output grid (poles included)."""
    nlon: int = 64
    """Longitudes, 0 <= lon < 360."""
    trajectories: int = 4
    """Independent trajectories, each its own year on the time axis."""
    days: float = 60.0
    """Length of each trajectory after spin-up, in days (at most 365)."""
    output_step_hours: int = 6
    """Hours between stored snapshots."""
    spinup_days: float = 2.0
    """Days integrated and discarded before the first stored snapshot."""
    mach: float = 0.06
    """Initial RMS wind speed relative to the gravity-wave speed sqrt(g * 10 km) (~19 m/s)."""
    peak_wavenumber: float | None = None
    """Wavenumber l where the initial vorticity spectrum peaks; None: min(6, lmax / 3), i.e.
    synoptic scales, kept well inside the truncation on coarse grids."""
    seed: int = 0
    """Base seed; trajectory k uses ``seed * 100_003 + k``."""
    start_year: int = 2000
    """Year of trajectory 0."""
    channels: tuple[str, ...] = field(default=SWE_CHANNELS)
    """Channels to store, a subset of ("h", "u", "v", "vo")."""
    solver_step_seconds: float | None = None
    """Solver time step; None picks the largest stable divisor of the output step."""

    def __post_init__(self) -> None:
        checks = [
            (self.nlat >= 8, f"nlat must be >= 8, got {self.nlat}"),
            (self.nlon >= 8 and self.nlon % 2 == 0, f"nlon must be even and >= 8, got {self.nlon}"),
            (self.trajectories >= 1, f"trajectories must be >= 1, got {self.trajectories}"),
            (0 < self.days <= 365, f"days must be in (0, 365], got {self.days}"),
            (self.output_step_hours >= 1, "output_step_hours must be >= 1"),
            (self.spinup_days >= 0, "spinup_days must be >= 0"),
            (0 < self.mach < 1, f"mach must be in (0, 1), got {self.mach}"),
            (self.peak_wavenumber is None or self.peak_wavenumber > 0, "peak_wavenumber must be > 0"),
            (len(self.channels) > 0, "channels must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        unknown = sorted(set(self.channels) - set(SWE_CHANNELS))
        if unknown:
            raise ValueError(f"unknown shallow-water channels {unknown}; choose from {SWE_CHANNELS}")
        step = self.solver_step()
        if step <= 0 or (self.output_step_hours * 3600) % step > 1e-9:
            raise ValueError(
                f"solver_step_seconds={step} must divide the output step ({self.output_step_hours * 3600} s)"
            )

    @property
    def snapshots_per_trajectory(self) -> int:
        return round(self.days * 24 / self.output_step_hours) + 1

    @property
    def n_times(self) -> int:
        return self.snapshots_per_trajectory * self.trajectories

    def peak(self) -> float:
        """The effective peak wavenumber of the initial vorticity spectrum."""
        if self.peak_wavenumber is not None:
            return float(self.peak_wavenumber)
        return min(6.0, ((self.nlat + 1) // 2) / 3)

    def solver_step(self) -> float:
        """Solver step in seconds: explicit, or the largest stable divisor of the output step."""
        if self.solver_step_seconds is not None:
            return float(self.solver_step_seconds)
        output_s = self.output_step_hours * 3600
        lmax = (self.nlat + 1) // 2
        limit = _STABLE_OMEGA_DT * _EARTH_RADIUS / (_MAX_WAVE_SPEED * lmax)
        n = int(np.ceil(output_s / limit))
        while output_s % n:
            n += 1
        return output_s / n

    def times(self) -> np.ndarray:
        """Time stamps of all snapshots, trajectories as consecutive years, datetime64[ns]."""
        step = np.timedelta64(self.output_step_hours, "h")
        per = np.arange(self.snapshots_per_trajectory) * step
        starts = [np.datetime64(f"{self.start_year + k:04d}-01-01T00") for k in range(self.trajectories)]
        return np.concatenate([s + per for s in starts]).astype("datetime64[ns]")

    def to_attrs(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


__all__ = ["SWE_CHANNELS", "SWEConfig"]
