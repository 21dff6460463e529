"""Tensor math only: numpy/torch in, numpy/torch out. No Ray, xarray, zarr or I/O."""
