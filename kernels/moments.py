"""Mergeable first and second moments (Welford / Chan et al. 1979).

Streaming statistics over arbitrarily many blocks, combined exactly in any order:
``merge(a, b)`` equals the moments of the concatenated data up to float rounding. Used for
normalisation statistics of climate stores and, later, for online ensemble summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (M2) of a set of samples.

    ``mean`` and ``m2`` have the shape of one sample (e.g. ``(n_channels,)``); ``count`` is a
    scalar number of samples. Everything is float64 so long streams do not lose precision.
    """

    count: float
    mean: np.ndarray
    m2: np.ndarray

    @staticmethod
    def empty(shape: tuple[int, ...]) -> Moments:
        return Moments(0.0, np.zeros(shape), np.zeros(shape))

    @staticmethod
    def of(samples: np.ndarray, axis: int | tuple[int, ...] = 0) -> Moments:
        """Moments of ``samples`` reduced over ``axis`` (the sample axes)."""
        x = np.asarray(samples, dtype=np.float64)
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        n = float(np.prod([x.shape[a] for a in axes]))
        mean = x.mean(axis=axes)
        dev = x - np.expand_dims(mean, axes)
        return Moments(n, mean, (dev * dev).sum(axis=axes))

    def merge(self, other: Moments) -> Moments:
        """Moments of the union of the two sample sets (Chan's parallel update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        return Moments(n, mean, m2)

    def variance(self, ddof: int = 0) -> np.ndarray:
        """Variance with ``ddof`` delta degrees of freedom (0: population, 1: unbiased)."""
        if self.count - ddof <= 0:
            raise ValueError(f"variance needs more than {ddof} samples, have {self.count:g}")
        return self.m2 / (self.count - ddof)

    def std(self, ddof: int = 0) -> np.ndarray:
        return np.sqrt(self.variance(ddof))
