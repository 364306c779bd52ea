"""Grid carbon intensity by country, from CodeCarbon's shipped data (offline).

emissions (g CO2-eq) = energy (kWh) x intensity (g/kWh) x PUE. The data file ships inside
the codecarbon package (its ``global_energy_mix.json``), so nothing is fetched.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

__all__ = ["carbon_intensity_g_per_kwh", "co2_g_for", "J_PER_KWH"]

J_PER_KWH = 3.6e6


@functools.cache
def _energy_mix() -> dict[str, dict]:
    path = resources.files("codecarbon") / "data" / "private_infra" / "global_energy_mix.json"
    return json.loads(path.read_text(encoding="utf-8"))


def carbon_intensity_g_per_kwh(country: str) -> float:
    """Carbon intensity of ``country``'s grid (ISO 3166-1 alpha-3), g CO2-eq per kWh.

    Example:
        >>> carbon_intensity_g_per_kwh("FRA") < carbon_intensity_g_per_kwh("POL")
        True
    """
    mix = _energy_mix()
    if country not in mix:
        raise ValueError(
            f"unknown country code {country!r}: expected an ISO 3166-1 alpha-3 code that "
            f"CodeCarbon has data for, such as 'USA', 'FRA', 'DEU' ({len(mix)} known)"
        )
    return float(mix[country]["carbon_intensity"])


def co2_g_for(energy_j: float, country: str, pue: float = 1.0) -> float:
    """Emissions in grams for ``energy_j`` joules drawn in ``country`` (times ``pue``)."""
    if pue < 1.0:
        raise ValueError(f"pue must be >= 1.0 (got {pue})")
    return energy_j / J_PER_KWH * carbon_intensity_g_per_kwh(country) * pue
