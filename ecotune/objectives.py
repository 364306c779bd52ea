"""The objectives a study can optimise: name, direction and what each one means.

Kept apart from the search layer so that the spec, the trainer and the report agree on
one list without importing Optuna.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["Objective", "OBJECTIVES", "DEFAULT_OBJECTIVES"]


class Objective(NamedTuple):
    name: str
    direction: Literal["maximize", "minimize"]
    description: str


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("accuracy", "maximize", "validation accuracy of the trained model (0-1)"),
        Objective("energy_j", "minimize", "training energy of the trial, joules"),
        Objective("duration_s", "minimize", "wall time of the trial's training, seconds"),
        Objective("co2_g", "minimize", "emissions of the trial's training, grams CO2-eq"),
        Objective("inference_energy", "minimize",
                  "estimated energy of one inference of the trained model on the "
                  "zero-skipping ASIC model, picojoules"),
        Objective("inference_energy_measured_j", "minimize",
                  "measured energy of one inference of the trained model on the trial's "
                  "device, joules per sample ([energy] inference = \"measured\")"),
    )
}

DEFAULT_OBJECTIVES: tuple[str, ...] = ("accuracy", "energy_j")
