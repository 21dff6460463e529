"""Package discovery for the ``swarmcast`` namespace (all metadata lives in pyproject.toml).

The three layer folders at the repository root are sub-packages of one import name:
``kernels/`` is ``swarmcast.kernels``, ``ops/`` is ``swarmcast.ops``, ``pipelines/`` is
``swarmcast.pipelines``. pyproject.toml cannot express "find every package under these folders
and prefix it", so this file does: a new sub-package (any folder with an ``__init__.py``) is
shipped without editing anything here.
"""

from setuptools import find_packages, setup

LAYERS = ("kernels", "ops", "pipelines")

setup(
    package_dir={f"swarmcast.{layer}": layer for layer in LAYERS},
    packages=[f"swarmcast.{name}" for name in find_packages(include=[f"{layer}*" for layer in LAYERS])],
)
