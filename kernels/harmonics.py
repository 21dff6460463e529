"""torch-harmonics, imported without the one ``torch.compile`` call its package makes on import.

Every module of swarmcast takes torch-harmonics from here (``from swarmcast.kernels.harmonics
import RealSHT``, or ``th`` for the package), so that this module is what loads it first in a
process.

Why: ``import torch_harmonics`` (0.9.3) wraps ``torch_harmonics.SpectralConvS2._contract_lwise``
in ``torch.compile`` while the package loads, and a process's first ``torch.compile`` imports
Inductor (about 200 modules): 1.3-1.5 s of the 2.5-3.9 s the import takes on this project's
2-core test machine, a fifth to a quarter of a hindcast actor's start-up, paid again by every
Ray worker, training worker and command that loads a model. Nothing of ours is compiled either
way: our SFNO and the diffusion network are the SFNO of ``torch_harmonics.examples.models``,
whose spectral convolution (``examples.models._layers.SpectralConvS2``) is a different class that
is never compiled; the compiled method belongs to the top-level ``SpectralConvS2``, which we do
not use. So the package is imported with ``TORCHDYNAMO_DISABLE=1`` (torch's documented switch,
read when ``torch.compile`` is called), which makes that call return the method unchanged, and
the variable is put back at once: a ``torch.compile`` made later in the process works as usual.
The cost of the switch is that ``torch_harmonics.SpectralConvS2`` runs eagerly in a process
that imported torch-harmonics through us; a user model that wants it compiled can wrap it.
"""

from __future__ import annotations

import os
import sys

_SWITCH = "TORCHDYNAMO_DISABLE"


def _import_without_compile():  # noqa: ANN202 (returns the torch_harmonics module)
    if "torch_harmonics" not in sys.modules:  # else the user's code loaded it: nothing to save
        saved = os.environ.get(_SWITCH)
        os.environ[_SWITCH] = "1"
        try:
            import torch_harmonics.examples.models  # the package and the models, under the switch
        finally:
            if saved is None:
                del os.environ[_SWITCH]
            else:
                os.environ[_SWITCH] = saved
    import torch_harmonics
    import torch_harmonics.examples.models  # the SFNO and the shallow-water solver

    return torch_harmonics


th = _import_without_compile()
quadrature = th.quadrature
RealSHT = th.RealSHT
InverseRealSHT = th.InverseRealSHT
ShallowWaterSolver = th.examples.ShallowWaterSolver
SphericalFourierNeuralOperator = th.examples.models.SphericalFourierNeuralOperator

__all__ = ["InverseRealSHT", "RealSHT", "ShallowWaterSolver", "SphericalFourierNeuralOperator", "quadrature", "th"]
