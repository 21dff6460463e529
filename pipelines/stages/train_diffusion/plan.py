"""Data facts and the model spec of ``train-diffusion``, checked before training: ``DiffusionTrainingPlan``.

Images (bundled digits, a folder, ``.npz``): the last ``validation_items`` are held out and up to
``max_validation`` of them, evenly spaced, are the validation set. A climate store: the model
becomes a forecaster p(x_{t+dt} | x_t) on standardised fields and the last contiguous segment
(e.g. the last shallow-water year) is held out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from swarmcast.ops.data.images import ImageSource, check_image_files, list_items, load_items, split_items
from swarmcast.ops.data.readers import infer_time_step, open_climate, stored_normalization
from swarmcast.ops.data.splits import evenly_spaced, held_out_start
from swarmcast.ops.data.windows import WindowSpec, read_windows, window_starts
from swarmcast.ops.diffusion.model import DiffusionSpec
from swarmcast.ops.storage import is_remote
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext

if TYPE_CHECKING:  # only for annotations: a plan is built from a checked config
    from swarmcast.pipelines.stages.train_diffusion.config import TrainDiffusionConfig


class DiffusionTrainingPlan:
    """What ``train-diffusion`` trains on and the network it builds."""

    def __init__(self, config: TrainDiffusionConfig, ctx: StageContext) -> None:
        d, m = config.data, config.model
        self.config = config
        if m.sigma_min >= m.sigma_max:
            raise ConfigError("model.sigma_min must be below model.sigma_max")
        if d.kind == "climate":
            self._climate(config, ctx)
        else:
            self._images(config, ctx)
        sigma_data = m.sigma_data or (1.0 if d.kind == "climate" else 0.5)
        path = {"kind": m.path, "sigma_min": m.sigma_min, "sigma_max": m.sigma_max, "gamma": m.gamma}
        c, h, w = self.shape
        network = "spherical" if d.kind == "climate" else "unet"
        if network == "unet" and (h % 2 or w % 2):
            raise ConfigError(f"data: images of {h}x{w} pixels; the U-Net needs even sizes")
        self.spec = DiffusionSpec(
            network,
            c,
            h,
            w,
            cond_channels=self.cond_channels,
            width_factor=m.width,
            num_layers=m.num_layers,
            sigma_data=sigma_data,
            path=path,
            prediction=m.prediction,
        )
        self.seed = config.seed if config.seed is not None else ctx.seed

    def _images(self, config: TrainDiffusionConfig, ctx: StageContext) -> None:
        d = config.data
        where = resolve_path(ctx.base, d.path) if d.path else None
        if where is not None and is_remote(where):
            raise ConfigError(f"data.path: {where}: image folders and .npz files are read from local paths only")
        path = str(where) if where is not None else None
        self.source = ImageSource(d.kind, path)  # type: ignore[arg-type]
        try:
            items = list_items(self.source)
            check_image_files(self.source, items)  # before any worker reads them
            self.train_items, held = split_items(items, d.validation_items)
            images, _ = load_items(self.source, held)
        except ValueError as err:  # an InputError, or a split that cannot be made
            raise ConfigError(f"data: {err}") from None
        self.validation = images[evenly_spaced(len(images), d.max_validation)]
        self.shape = tuple(images.shape[1:])
        self.cond_channels, self.n_train = 0, sum(i.hi - i.lo for i in self.train_items)
        self.store = None

    def _climate(self, config: TrainDiffusionConfig, ctx: StageContext) -> None:
        d = config.data
        if d.path is None:
            raise ConfigError("data.path: a climate store is needed for data.kind 'climate'")
        self.store = resolve_path(ctx.base, d.path)
        ds = open_climate(self.store, d.channels)
        self.channels = tuple(d.channels or list(ds.data_vars))
        self.normalization = stored_normalization(ds)
        if self.normalization is None:
            raise ConfigError(f"data.path: {self.store} has no normalisation statistics")
        times = ds["time"].values.astype("datetime64[ns]")
        self.step = infer_time_step(times)
        val_start = held_out_start(times)
        self.train_spec = WindowSpec(self.channels, steps=1, end=val_start - np.timedelta64(1, "ns"))
        val_spec = WindowSpec(self.channels, steps=1, start=val_start)
        self.n_train = len(window_starts(times, self.train_spec))
        starts = window_starts(times, val_spec)
        if self.n_train == 0 or len(starts) == 0:
            raise ConfigError(f"data.path: {self.store} needs consecutive states before and after {val_start}")
        pick = starts[evenly_spaced(len(starts), d.max_validation)]
        self.validation = read_windows(ds, pick, val_spec, self.normalization)  # (n, 2, C, H, W)
        self.shape = (len(self.channels), ds.sizes["lat"], ds.sizes["lon"])
        self.cond_channels = len(self.channels)


__all__ = ["DiffusionTrainingPlan"]
