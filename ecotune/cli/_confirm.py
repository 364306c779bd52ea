"""``ecotune confirm``: repeat chosen trials of a stored study with the same knobs and
seed, and store the repeats beside them (:func:`ecotune.confirm`)."""

from __future__ import annotations

import argparse
from typing import Any

from ecotune.cli._common import STORAGE_HELP, BadInput, Command, _print_front
from ecotune.cli._report import _load_study
from ecotune.names import ATTR_DURATION, ATTR_ENERGY, CONFIRM_CANDIDATES


class ConfirmCommand(Command):
    name = "confirm"
    help = "re-run a study's front K times to put intervals on its energy"
    interrupted = ("interrupted; every repeat that finished is stored (the one running is "
                   "not): run the same confirm again to continue")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--storage", help=STORAGE_HELP)
        parser.add_argument("--study-name",
                            help="the study (default: the only one in storage)")
        parser.add_argument("--repeats", type=int, default=3,
                            help="repeats per trial besides its original measurement; "
                                 "repeats already stored count (default: 3)")
        parser.add_argument("--candidates", choices=CONFIRM_CANDIDATES, default="front",
                            help="which trials: the front (default), those whose energy "
                                 "within the meter's noise could reach it, or all")
        parser.add_argument("--cooldown-s", type=float, default=0.0,
                            help="seconds to wait before each repeat (default: 0)")
        parser.add_argument("--noise-windows", type=int, default=5,
                            help="windows measuring the meter's noise for near-front, "
                                 "when the study holds none yet (default: 5)")

    def take_action(self, args: argparse.Namespace) -> int:
        # Everything the command line alone can get wrong, before storage is opened.
        if args.repeats < 1:
            raise BadInput(f"--repeats must be >= 1 (got {args.repeats})")
        if not args.cooldown_s >= 0:
            raise BadInput(f"--cooldown-s must be >= 0 (got {args.cooldown_s})")
        if args.noise_windows < 2:
            raise BadInput(f"--noise-windows must be >= 2 (got {args.noise_windows})")
        study = _load_study(args, self.console)
        from ecotune.noise import ConfirmError, confirm

        console = self.console

        def on_repeat(number: int, k: int, repeat: dict[str, Any]) -> None:
            kind = "estimate" if repeat["is_estimate"] else "measured"
            console.print(f"trial {number} repeat {k}/{args.repeats}: "
                          f"{repeat['energy_j']:.4g} J in {repeat['duration_s']:.3g} s "
                          f"({kind}, {repeat['meter']})", highlight=False)

        try:
            result = confirm(study, args.repeats, args.candidates, args.cooldown_s,
                             noise_windows=args.noise_windows, on_repeat=on_repeat)
        except ConfirmError as err:
            raise BadInput(str(err)) from None
        if result.noise is not None:
            n = result.noise
            console.print(f"meter noise ({n.meter}, {n.windows} windows of the fixed "
                          f"workload): energy cv {n.energy_cv:.2%}, duration cv "
                          f"{n.duration_cv:.2%}", highlight=False)
        spent_j, spent_s = _study_cost(study)
        console.print(
            f"confirmed {len(result.candidates)} trial(s) {result.candidates} "
            f"({args.candidates}): {result.repeats_run} repeat(s) run now, "
            f"{result.repeats_kept} already stored; the repeats run now took "
            f"{result.energy_j:.4g} J and {result.duration_s:.3g} s of training "
            f"({result.meter}); the study's trials' training took {spent_j:.4g} J and "
            f"{spent_s:.3g} s",
            highlight=False, soft_wrap=True)
        if result.accuracy_differs:
            console.print(f"[yellow]note:[/] trial(s) {result.accuracy_differs} reached "
                          "another accuracy on repeat: training is not deterministic here",
                          highlight=False)
        _print_front(study, console)
        return 0


def _study_cost(study) -> tuple[float, float]:
    """Energy (J) and training time (s) the study's own trials recorded."""
    trials = study.get_trials(deepcopy=False)
    return (sum(float(t.user_attrs.get(ATTR_ENERGY, 0.0)) for t in trials),
            sum(float(t.user_attrs.get(ATTR_DURATION, 0.0)) for t in trials))
