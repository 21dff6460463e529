"""The channel catalogue: short channel names, their CF metadata, and reanalysis names.

A *channel* is one 2-D field per time (``z500``, ``t2m``, ``h``). WeatherBench2 and ARCO-ERA5
stores name variables by long names (``geopotential``, ``2m_temperature``) and keep pressure
levels on a ``level`` dim; ``reanalysis_name`` maps a channel to that (name, level) pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelInfo:
    """CF metadata of one channel: ``units``, ``standard_name`` (may be empty), ``long_name``."""

    units: str
    standard_name: str
    long_name: str


# Single-level fields: short name -> (WeatherBench2/ERA5 long name, CF metadata).
SURFACE: dict[str, tuple[str, ChannelInfo]] = {
    "t2m": ("2m_temperature", ChannelInfo("K", "air_temperature", "2 metre temperature")),
    "d2m": ("2m_dewpoint_temperature", ChannelInfo("K", "dew_point_temperature", "2 metre dewpoint temperature")),
    "u10m": ("10m_u_component_of_wind", ChannelInfo("m s-1", "eastward_wind", "10 metre U wind component")),
    "v10m": ("10m_v_component_of_wind", ChannelInfo("m s-1", "northward_wind", "10 metre V wind component")),
    "u100m": ("100m_u_component_of_wind", ChannelInfo("m s-1", "eastward_wind", "100 metre U wind component")),
    "v100m": ("100m_v_component_of_wind", ChannelInfo("m s-1", "northward_wind", "100 metre V wind component")),
    "msl": ("mean_sea_level_pressure", ChannelInfo("Pa", "air_pressure_at_mean_sea_level", "Mean sea level pressure")),
    "sp": ("surface_pressure", ChannelInfo("Pa", "surface_air_pressure", "Surface pressure")),
    "tcwv": (
        "total_column_water_vapour",
        ChannelInfo("kg m-2", "atmosphere_mass_content_of_water_vapor", "Total column water vapour"),
    ),
    # metres of liquid water, as ERA5 stores it: a thickness (lwe_...), not a mass per area (kg m-2)
    "tp06": (
        "total_precipitation_6hr",
        ChannelInfo("m", "lwe_thickness_of_precipitation_amount", "6-hourly total precipitation"),
    ),
}

# Pressure-level fields: prefix -> (long name, CF metadata); channel = prefix + level in hPa.
PRESSURE_LEVEL: dict[str, tuple[str, ChannelInfo]] = {
    "z": ("geopotential", ChannelInfo("m2 s-2", "geopotential", "Geopotential")),
    "t": ("temperature", ChannelInfo("K", "air_temperature", "Temperature")),
    "u": ("u_component_of_wind", ChannelInfo("m s-1", "eastward_wind", "U component of wind")),
    "v": ("v_component_of_wind", ChannelInfo("m s-1", "northward_wind", "V component of wind")),
    "q": ("specific_humidity", ChannelInfo("kg kg-1", "specific_humidity", "Specific humidity")),
    "r": ("relative_humidity", ChannelInfo("%", "relative_humidity", "Relative humidity")),
}

# The embedded shallow-water "reanalysis" (a single layer, so no level suffix).
SHALLOW_WATER: dict[str, ChannelInfo] = {
    # the depth of one fluid layer: no CF standard name fits (geopotential_height is a height
    # above the geoid in a real atmosphere), so none is claimed
    "h": ChannelInfo("m", "", "Fluid layer depth"),
    "u": ChannelInfo("m s-1", "eastward_wind", "Eastward velocity"),
    "v": ChannelInfo("m s-1", "northward_wind", "Northward velocity"),
    "vo": ChannelInfo("s-1", "atmosphere_relative_vorticity", "Relative vorticity"),
}


def channel_attrs(channel: str) -> dict[str, str]:
    """The CF attributes a store gives ``channel``'s variable: ``units`` and ``long_name``, and
    ``standard_name`` only where one fits; none for a channel the catalogue does not know."""
    info = channel_info(channel)
    if info is None:
        return {}
    attrs = {"units": info.units, "long_name": info.long_name}
    if info.standard_name:
        attrs["standard_name"] = info.standard_name
    return attrs


_LEVEL_CHANNEL = re.compile(r"^(?P<prefix>[a-z]+?)(?P<level>\d+)$")


def reanalysis_name(channel: str) -> tuple[str, int | None]:
    """(long variable name, pressure level in hPa or None) of ``channel`` in a WB2/ERA5 store.

    >>> reanalysis_name("z500")
    ('geopotential', 500)
    >>> reanalysis_name("t2m")
    ('2m_temperature', None)
    """
    if channel in SURFACE:
        return SURFACE[channel][0], None
    m = _LEVEL_CHANNEL.match(channel)
    if m and m["prefix"] in PRESSURE_LEVEL:
        return PRESSURE_LEVEL[m["prefix"]][0], int(m["level"])
    raise KeyError(channel)


def channel_from_reanalysis(name: str, level: int | None) -> str | None:
    """Inverse of ``reanalysis_name``: ``("geopotential", 500) -> "z500"``; None if unknown."""
    if level is None:
        for short, (long_name, _) in SURFACE.items():
            if long_name == name:
                return short
        return None
    for prefix, (long_name, _) in PRESSURE_LEVEL.items():
        if long_name == name:
            return f"{prefix}{int(level)}"
    return None


# Channels that cannot go below a value (a depth, an absolute temperature, a pressure, an amount):
# a perturbation that takes an initial state below it makes an unphysical member.
_LOWER_BOUNDS = {"h": 0.0, "t2m": 0.0, "d2m": 0.0, "msl": 0.0, "sp": 0.0, "tcwv": 0.0, "tp06": 0.0}
_LOWER_BOUND_PREFIXES = {"t": 0.0, "q": 0.0, "r": 0.0}


def physical_lower_bound(channel: str) -> float | None:
    """The value ``channel`` cannot go below in its units (0 for depths, K, Pa, amounts); None if
    it can take any value (winds, vorticity, geopotential) or is unknown."""
    if channel in _LOWER_BOUNDS:
        return _LOWER_BOUNDS[channel]
    m = _LEVEL_CHANNEL.match(channel)
    return _LOWER_BOUND_PREFIXES.get(m["prefix"]) if m else None


def channel_info(channel: str) -> ChannelInfo | None:
    """CF metadata for ``channel`` if the catalogue knows it."""
    if channel in SURFACE:
        return SURFACE[channel][1]
    if channel in SHALLOW_WATER:
        return SHALLOW_WATER[channel]
    m = _LEVEL_CHANNEL.match(channel)
    if m and m["prefix"] in PRESSURE_LEVEL:
        info = PRESSURE_LEVEL[m["prefix"]][1]
        return ChannelInfo(info.units, info.standard_name, f"{info.long_name} at {m['level']} hPa")
    return None
