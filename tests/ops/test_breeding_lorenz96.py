"""Known-answer checks of breeding on Lorenz-96, through the ``BredVector`` the hindcast runs.

Lorenz-96 (Lorenz 1996; Lorenz & Emanuel 1998, J. Atmos. Sci. 55, 399-414) with N = 40 and
F = 8: dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F. Lorenz & Emanuel report that small
errors double in about 0.42 time units (2.1 "days" at 5 days per unit), a leading Lyapunov
exponent of ln 2 / 0.42 = 1.65 per unit; Lyapunov-spectrum studies of the same configuration
give 1.65-1.69. Breeding with a small amplitude and many cycles converges to the leading
Lyapunov vector, so the mean log growth per cycle over the cycle length must match it.

The adapter puts the 40 variables on one latitude row of a (1 channel, 4 lat, 40 lon) field and
copies the stepped state to every row, so the hemispheric-centred rescaling (the same factor in
both hemispheres when they hold the same values) is a plain rescaling of the L96 vector.
"""

import math

import numpy as np
import pytest
import torch

from swarmcast.ops.perturbations import BredVector, Member

N, FORCING, DT, SUBSTEPS = 40, 8.0, 0.05, 5  # a model step of 0.05 units: 6 "hours"
NLAT, ROW = 4, 1  # row 1 is at 30 N: extratropical, away from the pole
PUBLISHED_LAMBDA = math.log(2) / 0.42  # Lorenz & Emanuel (1998): doubling time 0.42 units
TOLERANCE = 0.10


def tendency(x: torch.Tensor) -> torch.Tensor:
    return (torch.roll(x, -1, -1) - torch.roll(x, 2, -1)) * torch.roll(x, 1, -1) - x + FORCING


def l96_step(x: torch.Tensor) -> torch.Tensor:
    """One model step (``DT``) of fourth-order Runge-Kutta in ``SUBSTEPS`` sub-steps, (..., N)."""
    h = DT / SUBSTEPS
    for _ in range(SUBSTEPS):
        k1 = tendency(x)
        k2 = tendency(x + h / 2 * k1)
        k3 = tendency(x + h / 2 * k2)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + tendency(x + h * k3))
    return x


def as_fields(x: torch.Tensor) -> torch.Tensor:
    """(..., N) states -> (..., 1, NLAT, N) fields with the state on every row."""
    return x[..., None, None, :].expand(*x.shape[:-1], 1, NLAT, N).clone()


class Lorenz96Model:
    """The model step ``BredVector`` calls, on fields; records the growth of each breeding cycle
    (|stepped difference| / |difference before the step|) when called on (control, perturbed)."""

    def __init__(self) -> None:
        self.growth: list[float] = []

    def __call__(self, fields: torch.Tensor) -> torch.Tensor:
        x = fields[:, 0, ROW, :]
        y = l96_step(x)
        if x.shape[0] == 2:
            self.growth.append(float(torch.linalg.norm(y[1] - y[0]) / torch.linalg.norm(x[1] - x[0])))
        return as_fields(y)


def trajectory(steps: int, nudge: float = 0.0) -> torch.Tensor:
    """(steps + 1, N) states on the attractor (after 2,500 spin-up steps), float64."""
    x = torch.full((N,), FORCING, dtype=torch.float64)
    x[0] += 0.01
    x[3] += nudge
    for _ in range(2500):
        x = l96_step(x)
    out = [x]
    for _ in range(steps):
        out.append(l96_step(out[-1]))
    return torch.stack(out)


@pytest.mark.parametrize("nudge", [0.0, 0.1])
def test_breeding_grows_perturbations_at_the_published_leading_lyapunov_exponent(nudge):
    cycles, transient = 1500, 100
    states = trajectory(cycles, nudge)
    model = Lorenz96Model()
    bred = BredVector([1e-3], [True], cycles=cycles).bred(as_fields(states), [Member(1, 1, 7)], model)
    rate = float(np.mean(np.log(model.growth[transient:]))) / DT
    assert len(model.growth) == cycles
    assert abs(rate - PUBLISHED_LAMBDA) < TOLERANCE * PUBLISHED_LAMBDA, (rate, PUBLISHED_LAMBDA)
    # the returned vector is rescaled to the target amplitude (RMS 1e-3 over the row)
    assert float(bred[0, 0, ROW].pow(2).mean().sqrt()) == pytest.approx(1e-3, rel=1e-6)


def test_bred_vectors_grow_faster_than_random_perturbations_of_the_same_amplitude():
    cycles, starts, ahead, amplitude = 40, 12, 2, 1e-3
    states = trajectory(cycles + starts * 10 + ahead)
    gen = torch.Generator().manual_seed(3)
    bred_growth, random_growth = [], []
    for s in range(starts):
        history = states[s * 10 : s * 10 + cycles + 1]
        dx = BredVector([amplitude], [True], cycles=cycles).bred(as_fields(history), [Member(1, 1, s)], Lorenz96Model())
        bred = dx[0, 0, ROW]
        noise = torch.randn(N, generator=gen, dtype=torch.float64)
        noise *= amplitude / noise.pow(2).mean().sqrt()
        x0 = history[-1]
        for delta, out in ((bred, bred_growth), (noise, random_growth)):
            a, b = x0, x0 + delta
            for _ in range(ahead):
                a, b = l96_step(a), l96_step(b)
            out.append(math.log(float(torch.linalg.norm(b - a) / torch.linalg.norm(delta))) / (ahead * DT))
    # bred vectors grow at about the leading exponent from the first step; random perturbations
    # project onto decaying directions too, and grow more slowly at first
    assert np.mean(bred_growth) > np.mean(random_growth) + 0.5, (np.mean(bred_growth), np.mean(random_growth))
    assert sum(b > r for b, r in zip(bred_growth, random_growth, strict=True)) >= starts - 2
