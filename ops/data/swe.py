"""The embedded "reanalysis": the spherical shallow-water equations from random initial states.

This is the benchmark the SFNO was introduced on (Bonev et al. 2023, "Spherical Fourier Neural
Operators", ICML), integrated with torch-harmonics' ``ShallowWaterSolver`` (spectral transform,
3rd-order Adams–Bashforth, implicit hyperdiffusion on vorticity and divergence).

Each trajectory starts from a random *balanced* state (``balanced_initial_condition``: random
vorticity, zero divergence, geopotential from nonlinear balance) under its own seed, is spun up
for ``spinup_days`` (discarded, so any residual imbalance radiates away), then sampled every
``output_step_hours``. Trajectories are laid end to end on one ``time`` axis as separate
years: trajectory k starts at ``start_year + k``-01-01T00, so ``days`` must fit in a year.
The jump between years is a gap in ``time``, which the sample windows in
``swarmcast.ops.data.windows`` never cross. A ``trajectory(time)`` coordinate names each
snapshot's trajectory as well.

Channels (float32, CF metadata from ``swarmcast.ops.data.channels.SHALLOW_WATER``):
``h`` layer height (m), ``u``/``v`` eastward/northward velocity (m/s), ``vo`` vorticity (1/s).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from swarmcast.kernels.harmonics import ShallowWaterSolver
from swarmcast.kernels.sphere import equiangular_latitudes, longitudes
from swarmcast.ops.data.swe_settings import SWE_CHANNELS, SWEConfig


def latitudes(config: SWEConfig) -> np.ndarray:
    return equiangular_latitudes(config.nlat)


def _solver(config: SWEConfig, device: torch.device) -> ShallowWaterSolver:
    lmax = (config.nlat + 1) // 2
    solver = ShallowWaterSolver(
        config.nlat, config.nlon, config.solver_step(), lmax=lmax, mmax=lmax, grid="equiangular"
    )
    return solver.to(device).double()


def _fields(solver: ShallowWaterSolver, uspec: torch.Tensor, channels: tuple[str, ...]) -> np.ndarray:
    """Grid fields (len(channels), nlat, nlon) float32 from the spectral state (phi, vort, div)."""
    grid = solver.spec2grid(uspec)
    uv = solver.getuv(uspec[1:])
    by_name = {"h": grid[0] / solver.gravity, "u": uv[0], "v": uv[1], "vo": grid[1]}
    return torch.stack([by_name[c] for c in channels]).float().cpu().numpy()


def balanced_initial_condition(
    solver: ShallowWaterSolver, generator: torch.Generator, mach: float, peak_wavenumber: float
) -> torch.Tensor:
    """A random, balanced spectral state (phi, vorticity, divergence), shape (3, lmax, mmax).

    Vorticity gets random complex coefficients with amplitude ``(l/l0) exp(-(l/l0)^2)``
    (synoptic scales peak at ``l0``), scaled so the area-mean square wind speed is
    ``(mach * sqrt(g * havg))**2``. Divergence is zero and geopotential solves the nonlinear
    balance equation, as in the Galewsky test case, so the flow starts free of the gravity-wave
    noise that unbalanced random states radiate; the 6-hourly tendencies are then small
    against the fields, as in the atmosphere.
    """
    lmax, mmax = solver.lmax, solver.mmax
    ell = torch.arange(lmax, dtype=torch.float64).reshape(-1, 1)
    shape = (ell / peak_wavenumber) * torch.exp(-((ell / peak_wavenumber) ** 2))
    real = torch.randn(lmax, mmax, generator=generator, dtype=torch.float64)
    imag = torch.randn(lmax, mmax, generator=generator, dtype=torch.float64)
    coeffs = torch.tril(torch.complex(real, imag) * shape)
    coeffs[:, 0] = coeffs[:, 0].real  # m = 0 coefficients of a real field are real
    vort = torch.zeros(2, lmax, mmax, dtype=torch.complex128)
    vort[0] = coeffs.to(solver.lap.device)
    vort = vort.to(solver.lap.device)
    uv = solver.getuv(vort)
    w = solver.quad_weights / solver.quad_weights.mean()
    rms = torch.sqrt(((uv**2).sum(0) * w).mean())
    target = mach * torch.sqrt(solver.gravity * solver.havg)
    vort = vort * (target / rms)
    uv = uv * (target / rms)
    # Nonlinear balance: div of the momentum equation with zero divergence tendency.
    absolute_vort = solver.spec2grid(vort[0]) + solver.coriolis
    flux = solver.vrtdivspec(uv * absolute_vort)
    kinetic = solver.grid2spec(0.5 * (uv**2).sum(0))
    mean_phi = solver.grid2spec(torch.full_like(absolute_vort, float(solver.gravity * solver.havg)))
    phi = solver.invlap * flux[0] - kinetic + mean_phi
    uspec = torch.zeros(3, lmax, mmax, dtype=torch.complex128, device=solver.lap.device)
    uspec[0] = phi
    uspec[1] = vort[0]
    return torch.tril(uspec)


def simulate(
    config: SWEConfig,
    *,
    trajectories: Sequence[int] | None = None,
    block: int = 16,
    device: str = "cpu",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(trajectory, fields)`` blocks in time order for ``trajectories`` (default all).

    ``fields`` is float32 of shape (n <= block, len(channels), nlat, nlon); the blocks of all
    trajectories concatenated are the ``config.n_times`` snapshots of ``config.times()``.
    Deterministic for a given config on a given device (float64 integration).
    """
    dev = torch.device(device)
    solver = _solver(config, dev)
    steps_per_output = round(config.output_step_hours * 3600 / config.solver_step())
    spinup_steps = round(config.spinup_days * 86400 / config.solver_step())
    for k in range(config.trajectories) if trajectories is None else trajectories:
        generator = torch.Generator().manual_seed(config.seed * 100_003 + k)
        uspec = balanced_initial_condition(solver, generator, config.mach, config.peak())
        if spinup_steps:
            uspec = solver.timestep(uspec, spinup_steps)
        out = []
        for i in range(config.snapshots_per_trajectory):
            if i:
                uspec = solver.timestep(uspec, steps_per_output)
            out.append(_fields(solver, uspec, config.channels))
            if len(out) == block:
                yield k, np.stack(out)
                out = []
        if out:
            yield k, np.stack(out)


def integrals(config: SWEConfig, fields: np.ndarray) -> dict[str, np.ndarray]:
    """Global mass and energy of stored snapshots, for conservation checks.

    ``fields``: (time, channels, nlat, nlon) with channels h, u, v present. Returns ``mass``
    (area mean of h, m) and ``energy`` (area mean of h|u|²/2 + g h²/2, m³ s⁻²), each (time,),
    integrated with the Clenshaw–Curtis weights of the grid (exact for band-limited fields).
    """
    from swarmcast.kernels.sphere import quadrature_weights

    idx = {c: config.channels.index(c) for c in ("h", "u", "v")}
    w = quadrature_weights(config.nlat).numpy()[:, None]
    h = fields[:, idx["h"]].astype(np.float64)
    ke = 0.5 * h * (fields[:, idx["u"]] ** 2 + fields[:, idx["v"]] ** 2)
    pe = 0.5 * 9.80616 * h**2
    return {"mass": (h * w).mean(axis=(-2, -1)), "energy": ((ke + pe) * w).mean(axis=(-2, -1))}


__all__ = ["SWE_CHANNELS", "SWEConfig", "integrals", "latitudes", "longitudes", "simulate"]
