"""``ecotune meters``: the energy backends this machine has, with a sample reading."""

from __future__ import annotations

import argparse

from ecotune.cli._common import BadInput, Command
from ecotune.names import METER_BACKENDS


class MetersCommand(Command):
    name = "meters"
    help = "list the energy backends this machine has, with a sample reading and noise"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--seconds", type=float, default=0.5,
                            help="length of the busy sample window per backend "
                                 "(default: 0.5)")
        parser.add_argument("--noise", action="store_true",
                            help="also measure each backend's coefficient of variation "
                                 "over identical windows of a fixed workload")
        parser.add_argument("--windows", type=int, default=5,
                            help="windows per backend for --noise (default: 5)")
        parser.add_argument("--country", default="USA",
                            help="ISO 3166-1 alpha-3 country code for the emissions figure")

    def take_action(self, args: argparse.Namespace) -> int:
        console = self.console
        from rich.table import Table

        from ecotune.energy import MEASURES, MeterError, get_meter, meter_status
        from ecotune.energy.carbon import carbon_intensity_g_per_kwh

        if args.seconds <= 0:
            raise BadInput(f"--seconds must be > 0 (got {args.seconds})")
        if args.windows < 2:
            raise BadInput(f"--windows must be >= 2 to measure a spread (got {args.windows})")
        try:
            carbon_intensity_g_per_kwh(args.country)
        except ValueError as err:
            raise BadInput(str(err)) from None

        table = Table(title=f"energy backends on this machine ({args.seconds:g} s busy sample)")
        columns = ["backend", "available", "measures", "sample reading / why not"]
        if args.noise:
            columns.append(f"noise: cv of energy / duration ({args.windows} windows)")
        for column in columns:
            table.add_column(column)
        for name in METER_BACKENDS:
            status = meter_status(name)
            noise = []
            if status.available:
                try:
                    sample = _busy_window(name, args.seconds, args.country)
                    noise = [_noise(name, args.windows)] if args.noise else []
                except MeterError as err:
                    sample = f"[red]failed:[/] {err}"
            else:
                sample = status.reason
            if args.noise and not noise:
                noise = ["-"]
            table.add_row(name, "yes" if status.available else "[yellow]no[/]", MEASURES[name],
                          sample, *noise)
        console.print(table)
        auto = get_meter("auto")
        sources = getattr(auto, "chosen", None)
        choice = (", ".join(f"{device} from {meter.name}" for device, meter in sources.items())
                  if sources else f"everything from {auto.name}")
        sample = _busy_window("auto", args.seconds, args.country)
        noise = f"; noise (cv of energy / duration): {_noise('auto', args.windows)}" \
            if args.noise else ""
        console.print(f"auto: {choice}; sample: {sample}{noise}", highlight=False)
        return 0


def _noise(name: str, windows: int) -> str:
    """Backend ``name``'s variation over identical windows of the fixed workload."""
    from ecotune.noise import meter_noise

    n = meter_noise(name, windows)
    return (f"{n.energy_cv:.2%} / {n.duration_cv:.2%} (mean {n.mean_energy_j:.3g} J, "
            f"{n.mean_duration_s:.3g} s; {'estimate' if n.is_estimate else 'measured'})")


def _busy_window(name: str, seconds: float, country: str) -> str:
    """A short busy loop measured by backend ``name``, as one line of figures."""
    import time

    from ecotune.energy import get_meter

    meter = get_meter(name)
    with meter.window() as window:
        end_s = time.perf_counter() + seconds
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
