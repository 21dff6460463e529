"""Building blocks that run in a notebook on one machine: data, stores, models, metrics.

Nothing here imports Ray; ``swarmcast.pipelines`` orchestrates these pieces on a cluster.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("swarmcast")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
