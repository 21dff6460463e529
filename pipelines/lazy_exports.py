"""Names a stage package exports but imports only when first used (a module ``__getattr__``,
PEP 562).

A stage's coordinator, plan and workers import torch and Ray, several seconds together. Its
settings (``config``) import neither, so a pipeline is checked, planned and refused in well
under a second; the rest loads when a stage runs or a caller asks for it by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``package.<where[name]>`` the first
    time ``name`` is asked for and returns its attribute ``name``."""

    def load(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return load


__all__ = ["lazy_exports"]
