"""Hemispheric-centred rescaling of perturbations (HENS bred vectors).

After each breeding cycle HENS rescales the perturbation per channel so its area-weighted RMS
over each extratropical hemisphere equals a target, and blends the two scale factors linearly
in latitude across the tropics (Mahesh et al. 2024, HENS part I; earth2studio
``HemisphericCentredBredVector``). Latitudes poleward of ``tropics_deg`` are extratropical.
"""

from __future__ import annotations

import torch


def hemispheric_rms(
    field: torch.Tensor, lat_deg: torch.Tensor, lat_weights: torch.Tensor, tropics_deg: float = 20.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(north, south) area-weighted RMS over each extratropical hemisphere, shape (..., channels).

    ``field``: (..., channels, nlat, nlon); ``lat_weights``: (nlat,) area weights.
    """
    w = lat_weights.to(field.dtype).reshape(-1, 1)
    out = []
    for mask in (lat_deg >= tropics_deg, lat_deg <= -tropics_deg):
        m = mask.to(field.dtype).reshape(-1, 1)
        num = (field**2 * w * m).sum(dim=(-2, -1))
        den = (w * m).sum() * field.shape[-1]
        out.append(torch.sqrt(num / den))
    return out[0], out[1]


def hemispheric_rescale(
    field: torch.Tensor,
    target: torch.Tensor,
    lat_deg: torch.Tensor,
    lat_weights: torch.Tensor,
    tropics_deg: float = 20.0,
) -> torch.Tensor:
    """Scale ``field`` (..., channels, nlat, nlon) to extratropical RMS ``target`` (channels,).

    North of ``tropics_deg`` the factor is target / RMS_north, south of ``-tropics_deg`` it is
    target / RMS_south, and in between it varies linearly with latitude. A channel whose RMS
    is zero in a hemisphere keeps its (zero) values there.
    """
    north, south = hemispheric_rms(field, lat_deg, lat_weights, tropics_deg)
    tiny = torch.finfo(field.dtype).tiny
    f_n = torch.where(north > tiny, target / north.clamp_min(tiny), torch.zeros_like(north))
    f_s = torch.where(south > tiny, target / south.clamp_min(tiny), torch.zeros_like(south))
    # blend weight: 0 in the south extratropics, 1 in the north, linear in between
    blend = ((lat_deg.to(field.dtype) + tropics_deg) / (2 * tropics_deg)).clamp(0, 1).reshape(-1, 1)
    factor = f_s[..., None, None] + (f_n - f_s)[..., None, None] * blend
    return field * factor
