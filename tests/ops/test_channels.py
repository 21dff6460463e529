"""Every channel's CF metadata is a consistent pair: its units convert to its standard name's canonical units."""

import pytest
from cf_units import Unit

from swarmcast.ops.data.channels import PRESSURE_LEVEL, SHALLOW_WATER, SURFACE, channel_info

# Canonical units of the standard names we use, from the CF Standard Name Table (version 84,
# cfconventions.org/Data/cf-standard-names/84/build/cf-standard-name-table.html).
CANONICAL_UNITS = {
    "air_temperature": "K",
    "dew_point_temperature": "K",
    "eastward_wind": "m s-1",
    "northward_wind": "m s-1",
    "air_pressure_at_mean_sea_level": "Pa",
    "surface_air_pressure": "Pa",
    "atmosphere_mass_content_of_water_vapor": "kg m-2",
    "precipitation_amount": "kg m-2",
    "lwe_thickness_of_precipitation_amount": "m",
    "geopotential": "m2 s-2",
    "specific_humidity": "1",
    "relative_humidity": "1",
    "atmosphere_relative_vorticity": "s-1",
}

INFOS = {
    **{name: info for name, (_, info) in SURFACE.items()},
    **{f"{prefix}500": info for prefix, (_, info) in PRESSURE_LEVEL.items()},
    **{f"swe:{name}": info for name, info in SHALLOW_WATER.items()},
}


@pytest.mark.parametrize("name", sorted(n for n, info in INFOS.items() if info.standard_name))
def test_units_convert_to_the_standard_names_canonical_units(name):
    info = INFOS[name]
    assert info.standard_name in CANONICAL_UNITS, f"{name}: add {info.standard_name!r} to the table"
    assert Unit(info.units).is_convertible(Unit(CANONICAL_UNITS[info.standard_name])), (name, info)


def test_six_hourly_precipitation_is_a_water_depth_in_metres():
    """ERA5 and WeatherBench2 store precipitation as metres of water: a thickness, not a mass."""
    info = channel_info("tp06")
    assert (info.units, info.standard_name) == ("m", "lwe_thickness_of_precipitation_amount")


def test_a_channel_no_standard_name_fits_claims_none():
    """The shallow-water layer depth is not a geopotential height (a height above the geoid in
    a real atmosphere): its attributes carry units and a long name only."""
    from swarmcast.ops.data.channels import channel_attrs

    assert channel_attrs("h") == {"units": "m", "long_name": "Fluid layer depth"}
    assert channel_attrs("z500")["standard_name"] == "geopotential"
    assert channel_attrs("not-a-channel") == {}
