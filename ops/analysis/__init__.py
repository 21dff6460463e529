"""Opening swarmcast stores the way analysts use them: ``xr.open_dataset(path,
engine="swarmcast", chunks={})`` (``backend``) and the ``.swarmcast`` accessor (``accessor``)
for selections plain xarray has no word for, such as every forecast valid at one time.

Importing this package registers the accessor; xarray imports ``backend`` (and with it the
accessor) on its own, through the ``xarray.backends`` entry point, whenever a dataset is opened.
"""

from swarmcast.ops.analysis.accessor import SwarmcastAccessor, at_valid_time
from swarmcast.ops.analysis.backend import SwarmcastBackend

__all__ = ["SwarmcastAccessor", "SwarmcastBackend", "at_valid_time"]
