"""Initial-condition perturbations, one per module behind ``base.Perturbation``.

``Control`` (no perturbation), ``GaussianNoise`` (white noise), ``CorrelatedNoise``
(spatially correlated Gaussian fields) and ``BredVector`` (HENS hemispheric-centred bred
vectors, which need the model and the history before the initial time).
"""

from swarmcast.ops.perturbations.base import Member, Perturbation, member_generator
from swarmcast.ops.perturbations.bred_vector import BredVector
from swarmcast.ops.perturbations.control import Control
from swarmcast.ops.perturbations.correlated import CorrelatedNoise
from swarmcast.ops.perturbations.gaussian import GaussianNoise
from swarmcast.ops.perturbations.members import member_pattern, member_seed, plan_members

__all__ = [
    "BredVector",
    "Control",
    "CorrelatedNoise",
    "GaussianNoise",
    "Member",
    "Perturbation",
    "member_generator",
    "member_pattern",
    "member_seed",
    "plan_members",
]
