"""Deliberate one-line bugs in the rules that decide a trial's fate: the suite must catch
every one (issue 22, item 5). Not a test module (pytest collects ``test_*.py`` only).

Each mutant replaces one exact piece of source (found exactly once) in a temporary copy
of the tree (the tracked and untracked, not ignored, files: never the tree itself), runs
the test files that pin that rule against the copy with ``-x``, and restores the file
before the next. One line per mutant: ``caught by <first failing test>`` or ``SURVIVED``;
the exit status is 1 when any survived.

    nice -n 10 .venv/bin/python tests/mutations.py            # every mutant
    .venv/bin/python tests/mutations.py --only rung --list    # select by label; list them
    .venv/bin/python tests/mutations.py --from 9              # resume at the 9th
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Mutant(NamedTuple):
    label: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: test files, optionally -k


EDGES = "tests/test_rule_edges.py"

MUTANTS = [
    # Energy-aware early stopping (ecotune/rules/_early_stopping.py).
    Mutant("stopping margin, accuracy: >= becomes >", "ecotune/rules/_early_stopping.py",
           "(front[:, 0] >= prediction.accuracy + self.margin)",
           "(front[:, 0] > prediction.accuracy + self.margin)", (EDGES,)),
    Mutant("stopping margin, energy: <= becomes <", "ecotune/rules/_early_stopping.py",
           "(front[:, 1] <= prediction.energy_j * (1 - self.margin))",
           "(front[:, 1] < prediction.energy_j * (1 - self.margin))", (EDGES,)),
    Mutant("stopping: min_epochs off by one", "ecotune/rules/_early_stopping.py",
           "if record.epoch < self.min_epochs:", "if record.epoch <= self.min_epochs:",
           (EDGES,)),
    Mutant("stopping: a decision at the planned last epoch", "ecotune/rules/_early_stopping.py",
           "record.epoch >= self.planned_epochs:", "record.epoch > self.planned_epochs:",
           (EDGES,)),
    Mutant("stopping: the freeze multiplier one epoch late", "ecotune/rules/_early_stopping.py",
           "if freeze_at is not None and epoch >= freeze_at:",
           "if freeze_at is not None and epoch > freeze_at:", (EDGES,)),
    Mutant("stopping: predicted accuracy clipped at the worst seen, not the best",
           "ecotune/rules/_early_stopping.py",
           "np.clip(accuracy, accuracies.max(), 1.0)", "np.clip(accuracy, accuracies.min(), 1.0)",
           (EDGES,)),
    # Successive halving (ecotune/rules/_successive_halving.py).
    Mutant("rung rule: ties counted ahead of the trial decided",
           "ecotune/rules/_successive_halving.py",
           "(crowding > crowding[mine])", "(crowding >= crowding[mine])",
           (EDGES, "tests/test_successive_halving.py")),
    Mutant("rung rule: one more trial continues", "ecotune/rules/_successive_halving.py",
           "crowding[mine]).sum()) < keep", "crowding[mine]).sum()) <= keep",
           (EDGES, "tests/test_successive_halving.py")),
    Mutant("rung rule: the top share rounded up", "ecotune/rules/_successive_halving.py",
           "keep = max(1, len(pts) // reduction_factor)",
           "keep = max(1, -(-len(pts) // reduction_factor))",
           (EDGES, "tests/test_successive_halving.py")),
    # The front (ecotune/pareto).
    Mutant("feasibility rule: a zero constraint infeasible", "ecotune/pareto/_feasible.py",
           "value <= 0.0 for value", "value < 0.0 for value",
           ("tests/test_pareto.py", "tests/test_budgets.py")),
    Mutant("dominance: equal points dominate each other", "ecotune/pareto/_dominance.py",
           "(costs <= mine).all(axis=1) & (costs < mine).any(axis=1)",
           "(costs <= mine).all(axis=1) & (costs <= mine).any(axis=1)",
           ("tests/test_pareto.py", EDGES)),
    Mutant("hypervolume reference margin: moved towards the front, not away",
           "ecotune/report/history.py",
           "reference = worst + sign * margin * span", "reference = worst - sign * margin * span",
           ("tests/test_report.py",)),
    # Energy readings (ecotune/energy).
    Mutant("RAPL wrap correction: the part after the wrap dropped", "ecotune/energy/_rapl.py",
           "return now_uj + max_range_uj - before_uj", "return max_range_uj - before_uj",
           ("tests/test_meters.py", "-k", "rapl or wrap")),
    Mutant("RAPL reset rule: a step at the power bound taken for a reset",
           "ecotune/energy/_rapl.py",
           "if step_uj <= bound_uj:", "if step_uj < bound_uj:",
           ("tests/test_meters.py", "-k", "rapl or wrap or reset")),
    Mutant("laps not cumulative: a lap returns the last part only", "ecotune/energy/_base.py",
           "self._done = part if self._done is None else self._done + part",
           "self._done = part", ("tests/test_meter_contract.py",)),
    Mutant("CodeCarbon: a real reading above the extrapolation reported at the extrapolation",
           "ecotune/energy/_codecarbon.py",
           "if floor is None or m.energy_j >= floor.energy_j:",
           "if floor is None or m.energy_j <= floor.energy_j:",
           ("tests/test_meters.py", "-k", "adds_up_epoch")),
    Mutant("counter ledger: every participant booked the whole advance",
           "ecotune/energy/_ledger.py",
           'p["j"] += delta_j * weights[key] / total', 'p["j"] += delta_j',
           ("tests/test_parallel.py", "-k", "ledger or codecarbon_split")),
    Mutant("CodeCarbon across processes: its whole-package RAPL delta kept",
           "ecotune/energy/_codecarbon.py",
           'if "cpu" in split_j:', 'if "cpu" in split_j and False:',
           ("tests/test_parallel.py", "-k", "codecarbon_split")),
    # Energy budgets on the search (ecotune/rules/_budgets.py).
    Mutant("trial budget: an epoch landing exactly on the budget stopped",
           "ecotune/rules/_budgets.py",
           "record.energy_j + per_epoch_j > self.budget_j",
           "record.energy_j + per_epoch_j >= self.budget_j", ("tests/test_budgets.py",)),
    Mutant("study budget: reached only past the budget, not at it", "ecotune/rules/_budgets.py",
           "self.reached = self.spent_j(study) >= self.budget_j",
           "self.reached = self.spent_j(study) > self.budget_j", ("tests/test_budgets.py",)),
    # The energy-budget projection (ecotune/knobs/budget.py).
    Mutant("budget knapsack order: cheapest-value weights kept first", "ecotune/knobs/budget.py",
           "order = torch.argsort(values / costs, descending=True)",
           "order = torch.argsort(values / costs, descending=False)",
           ("tests/test_knobs.py", "-k", "budget or projection or pruned or masks")),
    Mutant("budget: the input energy left out of the capacity", "ecotune/knobs/budget.py",
           "capacity = target - input_energy", "capacity = target",
           ("tests/test_knobs.py", "-k", "budget or projection or pruned or masks")),
    Mutant("budget: masks not re-applied between projections", "ecotune/knobs/budget.py",
           "        else:\n            self._apply_masks()", "        else:\n            pass",
           ("tests/test_knobs.py", "-k", "budget or projection or pruned or masks")),
    Mutant("budget: train() never calls the projector after a step",
           "ecotune/training/_loop.py",
           "            projector.after_step(epoch - 1 + (batch + 1) / n_batches)",
           "            pass", ("tests/test_knobs.py", "-k", "masks_at_every_step")),
    Mutant("budget: depthwise weights priced by another group's inputs",
           "ecotune/knobs/budget.py",
           "// (out_channels // groups))", "% groups)",
           ("tests/test_knobs.py", "-k", "depthwise")),
    Mutant("budget: an unreachable budget passes silently", "ecotune/knobs/budget.py",
           "self.unmet_ = None if energy <= target else",
           "self.unmet_ = None if True else",
           ("tests/test_knobs.py", "-k", "budget or projection or pruned or masks or said")),
    # The replay (ecotune/tabular/_replay.py).
    Mutant("replay: planned for the epochs run, not configured", "ecotune/tabular/_replay.py",
           "planned = training.epochs",
           'planned = int(record.finals.get("epochs_run") or len(record.epochs))',
           ("tests/test_tabular.py", "-k", "live or successive_halving")),
    Mutant("replay: runtime decisions from the base config", "ecotune/tabular/_replay.py",
           "for s in self.snaps})[1]", 'for s in self.snaps if s.name == "epochs"})[1]',
           ("tests/test_tabular.py", "-k", "live or successive_halving")),
]


def _tree_files(root: Path) -> list[str]:
    """The tree as git sees it: tracked files and untracked ones that are not ignored."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, capture_output=True, check=True).stdout
    return sorted({p for p in out.decode().split("\0") if p and (root / p).is_file()})


def copy_tree(root: Path, into: Path) -> None:
    for rel in _tree_files(root):
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def first_failure(output: str) -> str | None:
    """The first ``FAILED``/``ERROR`` test id of pytest's short summary."""
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(1) if match else None


def run_mutant(mutant: Mutant, tree: Path, timeout_s: float) -> tuple[str, float]:
    """Apply ``mutant`` in ``tree``, run its tests, restore the file; the verdict line."""
    path = tree / mutant.path
    original = path.read_text()
    if original.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.label!r}: {mutant.old!r} occurs "
                         f"{original.count(mutant.old)} times in {mutant.path}, not once")
    path.write_text(original.replace(mutant.old, mutant.new))
    started = time.perf_counter()
    try:
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             "-p", "no:xdist", "-o", "addopts=-ra", *mutant.tests],
            cwd=tree, env=env, capture_output=True, text=True, timeout=timeout_s)
        output = result.stdout + result.stderr
        if result.returncode == 0:
            verdict = "SURVIVED"
        else:
            failed = first_failure(output)
            verdict = (f"caught by {failed}" if failed else
                       f"SURVIVED? pytest exited {result.returncode} with no failing test")
    except subprocess.TimeoutExpired:
        verdict = f"caught by a timeout ({timeout_s:.0f} s)"
    finally:
        path.write_text(original)
    return verdict, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the mutants whose label contains this")
    parser.add_argument("--from", dest="start", type=int, default=1,
                        help="start at this mutant (1-based, in --list order)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only in m.label][args.start - 1:]
    if args.list:
        for i, m in enumerate(chosen, start=args.start):
            print(f"{i}. {m.label}  [{m.path}; {' '.join(m.tests)}]")
        return 0
    survived = 0
    with tempfile.TemporaryDirectory(prefix="ecotune-mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(ROOT, tree)
        for mutant in chosen:  # check every mutant applies before spending time on any
            if (tree / mutant.path).read_text().count(mutant.old) != 1:
                raise SystemExit(f"mutant {mutant.label!r} does not apply to {mutant.path}")
        for mutant in chosen:
            verdict, took_s = run_mutant(mutant, tree, args.timeout)
            survived += verdict.startswith("SURVIVED")
            print(f"{mutant.label}: {verdict} ({took_s:.0f} s)", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutants caught", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
