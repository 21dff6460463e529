"""Diffusion models: objectives and preconditioning, EMA, curriculum, denoiser networks, checkpoints.

The maths of noise paths and loss weights is in ``swarmcast.kernels.diffusion``; samplers are
in ``swarmcast.ops.samplers``.
"""
