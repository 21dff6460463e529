"""Training on Ray Train, shared by ``train-sfno`` and ``train-diffusion``: resources
(``settings.Scaling``), the resumable run state (``run_state``) and the trainer skeleton that
each stage's trainer fills in (``skeleton.Trainer``)."""
