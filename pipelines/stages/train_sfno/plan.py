"""Data-dependent facts of ``train-sfno``, checked before any training starts: the ``SFNOTrainingPlan``.

Channels, grid and normalisation of the store; the model step as a whole multiple of the data
step; the held-out validation period (the last contiguous segment unless configured) and its
evenly spaced validation windows; the training windows' spec; the SFNO hyper-parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from swarmcast.ops.data.normalization import InvalidStatisticsError, Normalization, read_statistics_document
from swarmcast.ops.data.readers import infer_time_step, open_climate, stored_normalization
from swarmcast.ops.data.splits import evenly_spaced, held_out_start, whole_steps
from swarmcast.ops.data.windows import WindowSpec, window_starts
from swarmcast.ops.sfno.model import SFNOConfig
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext

if TYPE_CHECKING:  # only for annotations: a plan is built from a checked config
    from swarmcast.pipelines.stages.train_sfno.config import TrainSFNOConfig, Validation


class SFNOTrainingPlan:
    """What every seed of ``train-sfno`` trains on, checked once on the driver."""

    def __init__(self, config: TrainSFNOConfig, ctx: StageContext) -> None:
        path = resolve_path(ctx.base, config.data)
        ds = open_climate(path, config.channels)
        self.store = path
        self.channels = tuple(config.channels or list(ds.data_vars))
        self.nlat, self.nlon = ds.sizes["lat"], ds.sizes["lon"]
        self.normalization = (
            stored_normalization(ds)
            if config.normalization is None
            else self._statistics_file(resolve_path(ctx.base, config.normalization))
        )
        if self.normalization is None:
            raise ConfigError(
                f"{path}: no normalisation statistics: compute them with `swarmcast stats {config.data} -o "
                "normalization.json` and add `normalization: normalization.json` to this stage"
            )
        lacking = [c for c in self.channels if c not in self.normalization.channels]
        if lacking:
            raise ConfigError(
                f"normalization: no statistics for channels {lacking} (compute them with swarmcast stats)"
            )
        times = ds["time"].values.astype("datetime64[ns]")
        data_step = infer_time_step(times)
        stride = whole_steps(config.step_hours * 3600, data_step / np.timedelta64(1, "s"))
        if stride is None:
            raise ConfigError(f"step_hours {config.step_hours} is not a whole multiple of the data step {data_step}")
        self.stride = stride
        self.val_start, self.val_end = self._validation_range(config.validation, times)
        lead_steps = whole_steps(config.validation.lead_hours, config.step_hours)
        if lead_steps is None:
            raise ConfigError(f"validation.lead_hours {config.validation.lead_hours} is not a multiple of step_hours")
        self.lead_steps = lead_steps
        self.model = self._model_config(config)
        k = config.train.rollout_steps
        self.train_spec = WindowSpec(
            self.channels, steps=k, stride=self.stride, end=self.val_start - np.timedelta64(1, "ns")
        )
        self.val_spec = WindowSpec(
            self.channels, steps=self.lead_steps, stride=self.stride, start=self.val_start, end=self.val_end
        )
        n_train = len(window_starts(times, self.train_spec))
        if n_train == 0:
            raise ConfigError(
                f"train.rollout_steps={k} needs {k + 1} consecutive states {config.step_hours} h apart before "
                f"{self.val_start}; the data has none"
            )
        starts = window_starts(times, self.val_spec)
        if len(starts) == 0:
            raise ConfigError(
                f"validation range {self.val_start}..{self.val_end} holds no {config.validation.lead_hours} h "
                "window; widen it or lower validation.lead_hours"
            )
        self.val_starts = starts[evenly_spaced(len(starts), config.validation.max_windows)]
        self.n_train = n_train

    @staticmethod
    def _statistics_file(path: Path) -> Normalization:
        """The statistics ``swarmcast stats`` wrote to ``path``, refused with the path when
        missing, not JSON or not such a file."""
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"normalization: {path} not found (write it with swarmcast stats)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"normalization: {path}: cannot be read as JSON ({err})") from None
        try:
            return read_statistics_document(doc, str(path))
        except InvalidStatisticsError as err:
            raise ConfigError(f"normalization: {err}") from None

    @staticmethod
    def _validation_range(v: Validation, times: np.ndarray) -> tuple[np.datetime64, np.datetime64]:
        t0, t1 = times[0], times[-1]
        start = held_out_start(times) if v.start is None else np.datetime64(v.start, "ns")
        end = t1 if v.end is None else np.datetime64(v.end, "ns")
        if not (t0 < start <= end <= t1):
            raise ConfigError(f"validation range {start}..{end} must lie inside the data ({t0}..{t1}) after its start")
        return start, end

    def _model_config(self, config: TrainSFNOConfig) -> SFNOConfig:
        try:
            return SFNOConfig(channels=self.channels, nlat=self.nlat, nlon=self.nlon, **config.model.model_dump())
        except ValueError as err:
            raise ConfigError(f"model: {err}") from None


__all__ = ["SFNOTrainingPlan"]
