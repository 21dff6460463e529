"""Shared machinery of the stages that fill an ensemble store (``hindcast``, ``sample-diffusion``):
their common settings (``settings``), the typed plan and runner a stage hands the scheduler
(``protocols``), the actor scheduler that computes work units (``scheduler``) and opening or
creating the store (``output``). ARCHITECTURE.md, "Work units", tells the whole story."""
