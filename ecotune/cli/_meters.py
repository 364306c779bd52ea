"""``ecotune meters``: the energy backends this machine has, with a sample reading."""

from __future__ import annotations

import argparse

from rich.console import Console

from ecotune.cli._common import BadInput
from ecotune.names import METER_BACKENDS


def _meters(args: argparse.Namespace, console: Console) -> int:
    import time

    from rich.table import Table

    from ecotune.energy import MEASURES, MeterError, get_meter, meter_status
    from ecotune.energy.carbon import carbon_intensity_g_per_kwh

    if args.seconds <= 0:
        raise BadInput(f"--seconds must be > 0 (got {args.seconds})")
    try:
        carbon_intensity_g_per_kwh(args.country)
    except ValueError as err:
        raise BadInput(str(err)) from None

    def busy_window(name: str) -> str:
        """A short busy loop measured by backend ``name``, as one line of figures."""
        meter = get_meter(name, args.country)
        with meter.window() as window:
            end_s = time.perf_counter() + args.seconds
            while time.perf_counter() < end_s:
                sum(i * i for i in range(1000))
        m = window.measurement
        devices = ", ".join(f"{d} {j:.3g} J" for d, j in
                            (("cpu", m.cpu_j), ("gpu", m.gpu_j), ("ram", m.ram_j))
                            if j is not None)
        label = "estimate" if m.is_estimate else "measured"
        others = "".join(f"; {n} read {j:.3g} J" for n, j in m.alternatives.items())
        return (f"{m.energy_j:.3g} J in {m.duration_s:.2f} s ({m.energy_j / m.duration_s:.3g} W"
                f"; {devices}); {label}, scope {m.scope}{others}")

    table = Table(title=f"energy backends on this machine ({args.seconds:g} s busy sample)")
    for column in ("backend", "available", "measures", "sample reading / why not"):
        table.add_column(column)
    for name in METER_BACKENDS:
        status = meter_status(name)
        if status.available:
            try:
                sample = busy_window(name)
            except MeterError as err:
                sample = f"[red]failed:[/] {err}"
        else:
            sample = status.reason
        table.add_row(name, "yes" if status.available else "[yellow]no[/]", MEASURES[name],
                      sample)
    console.print(table)
    auto = get_meter("auto", args.country)
    sources = getattr(auto, "chosen", None)
    choice = (", ".join(f"{device} from {meter.name}" for device, meter in sources.items())
              if sources else f"everything from {auto.name}")
    console.print(f"auto: {choice}; sample: {busy_window('auto')}", highlight=False)
    return 0
