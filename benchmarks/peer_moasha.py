"""A peer, measured: syne-tune's MOASHA on a recorded table, beside ecotune's methods.

MOASHA (Schmucker et al. 2021; syne-tune's ``MOASHA`` scheduler, non-dominated sort with
an epsilon-net, as shipped) runs on the same table as ecotune's replay, with the same seeds,
the same energy accounting (:func:`ecotune.tabular.replay_scheduler`: a trial stopped
after epoch k costs its cumulative energy at k plus the window's energy after training; a
trial that trains to its end pays its test evaluation where ``[training]
test_evaluation`` says) and the same metrics (:func:`ecotune.tabular.summarize`: energy
to 90/95/99/99.5 % of the table's reference hypervolume, log hypervolume difference, final
ratio, means and 95 % CIs over seeds; one hypervolume history, with the feasibility
rule). ecotune's methods are replayed in the same run, and the output ends with

    T3 <ratio> (goal <= 1.0) holds|misses

the ratio being ecotune's best method's mean search energy to 99 % over MOASHA's best
variant's (ratio of means, 95 % bootstrap interval, censored as in
:func:`ecotune.pareto.energy_ratio`).

syne-tune lives in the benchmark's own environment, never in ecotune's: MOASHA runs in a
subprocess of ``benchmarks/.peer-venv`` (``_moasha_driver.py``) that answers one JSON line
per call (suggest, each epoch's result), while this side walks the table and counts.

    .venv/bin/python benchmarks/peer_moasha.py --setup      # once: the venv, syne-tune 0.16.0
    .venv/bin/python benchmarks/peer_moasha.py --processes 2 --json peer.json
    .venv/bin/python benchmarks/peer_moasha.py benchmarks/tables/digits_cnn.csv \\
        --study benchmarks/tables/digits_cnn.toml

MOASHA's variants: ``moa`` searches the study's own space (``epochs`` too, where it is a
knob: a trial with fewer planned epochs completes there), ``moa-r`` takes ``epochs`` as
its resource (it searches the other knobs; each trial walks the longest recorded curve of
its configuration, up to ``max_t``); ``+rk``: MOASHA's own non-dominated sort handed to
its rungs as ranks (syne-tune 0.16 hands them the sorted order instead, so that a rung
decides on the index of its worst point rather than on the new trial's rank; both are
run, and T3 takes the better); ``/c``: a stopped trial's point at the epoch it
stopped counts on the front (``on_stop = "complete"``), as syne-tune's own benchmarks count
every reported result; without it the stopped trial is pruned. One simulated worker by
default, matching ecotune's sequential replay.

The driver sorts with ``_moasha_sort.nondominated_sort`` (syne-tune's answers, faster:
``--sort shipped`` for syne-tune's own), and with one worker gets a trial's whole curve in
one round trip. ``--runs-dir`` keeps every MOASHA run, so that invocations with
``--only-seeds`` share a long job and a last one (the same options) assembles it:

    .venv/bin/python benchmarks/peer_moasha.py TABLE --study STUDY --moasha moa/c \
        --ecotune-methods none --runs-dir runs --only-seeds 0-14     # and 15-29, ...
    .venv/bin/python benchmarks/peer_moasha.py TABLE --study STUDY --moasha moa/c \
        --ecotune-methods none --runs-dir runs --json peer.json      # reads them all
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ecotune.pareto import LEVELS, energy_ratio, energy_to_reach, level_tag
from ecotune.spec import CategoricalParam, FloatParam, load_spec
from ecotune.tabular import Method, read_table, replay, replay_scheduler, summarize

HERE = Path(__file__).resolve().parent
TABLES = HERE / "tables"
STUDIES = HERE.parent / "studies"
PEER_VENV = HERE / ".peer-venv"
PEER_PYTHON = PEER_VENV / "bin" / "python"
DRIVER = HERE / "_moasha_driver.py"
#: The syne-tune release the benchmark installs and was measured with.
SYNE_TUNE = "syne-tune==0.16.0"
#: The knob MOASHA may take as its resource (``moasha-r``).
RESOURCE = "epochs"
#: ecotune's methods replayed by default: every one of search_efficiency.py's but the slow
#: GP-based ones (tens of seconds a run: ``--ecotune-methods`` names them).
SLOW = ("gp", "skopt", "skopt+cost", "skopt+cool")
#: MOASHA's rung ranking: as shipped, and its own sort read as ranks (``+rank``).
PRIORITIES = ("shipped", "rank")
#: Seeds per MOASHA job (one driver process each).
SEED_CHUNK = 5
#: Plain baselines, not "ecotune methods" for T3 (as for T1).
BASELINES = ("grid", "random")


class Moasha:
    """The :class:`ecotune.tabular.Scheduler` that asks syne-tune's MOASHA in the peer
    environment (one driver process, re-initialised per run)."""

    def __init__(self, python: Path = PEER_PYTHON) -> None:
        self.process = subprocess.Popen([str(python), str(DRIVER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        self.version = "?"

    def _call(self, message: dict) -> dict:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the MOASHA driver ({DRIVER.name}) ended; see its error above")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the MOASHA driver: {answer['error']}")
        return answer

    def init(self, space: dict, max_t: int, grace_period: int, reduction_factor: float,
             brackets: int, seed: int, priority: str = "shipped", sort: str = "fast",
             ) -> None:
        self.version = self._call({"op": "init", "space": space, "max_t": max_t,
                                   "grace_period": grace_period,
                                   "reduction_factor": reduction_factor,
                                   "brackets": brackets, "seed": seed,
                                   "priority": priority, "sort": sort})["version"]

    def suggest(self, trial_id: int):
        return self._call({"op": "suggest", "trial_id": trial_id})["config"]

    def on_result(self, trial_id: int, epoch: int, accuracy: float, energy_j: float,
                  last: bool) -> bool:
        return self._call({"op": "result", "trial_id": trial_id, "epoch": epoch,
                           "accuracy": accuracy, "energy_j": energy_j,
                           "last": last})["continue"]

    def on_curve(self, trial_id: int, accuracy: list[float], energy_j: list[float]) -> int:
        return self._call({"op": "curve", "trial_id": trial_id, "accuracy": accuracy,
                           "energy_j": energy_j})["epochs"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
            self.process.wait(timeout=30)


def space_for(spec, resource: str | None) -> dict:
    """The study's search space as the driver's domains (syne-tune's uniform,
    loguniform, randint, choice): the same distributions ecotune's random sampler draws
    from, read as the nearest grid value by the same lookup."""
    out = {}
    for name, param in spec.search_space.items():
        if name == resource:
            continue
        if isinstance(param, CategoricalParam):
            out[name] = {"type": "choice", "choices": list(param.choices)}
        else:
            out[name] = {"type": "float" if isinstance(param, FloatParam) else "int",
                         "low": param.low, "high": param.high, "log": bool(param.log),
                         "step": param.step}
    return out


def variants(spec, priorities: tuple[str, ...] = PRIORITIES,
             grace_periods: tuple[int, ...] = (),
             ) -> list[tuple[str, str | None, str, str, int]]:
    """(label, resource, on_stop, priority, grace period) of each MOASHA variant this
    study allows; a grace period other than the study's ``min_epochs`` (the default one)
    is ``@gN`` in the label."""
    out = []
    default = spec.early_stopping.min_epochs
    resources = [None] + ([RESOURCE] if RESOURCE in spec.search_space else [])
    for grace in grace_periods or (default,):
        for priority in priorities:
            for resource in resources:
                for on_stop in ("prune", "complete"):
                    label = ("moa" + ("-r" if resource else "")
                             + ("+rk" if priority == "rank" else "")
                             + ("/c" if on_stop == "complete" else "")
                             + (f"@g{grace}" if grace != default else ""))
                    out.append((label, resource, on_stop, priority, grace))
    return out


def _moasha_runs(job: tuple) -> list:
    """Runs of one MOASHA variant over ``seeds`` (one driver process for all of them)."""
    (table_path, study_path, label, resource, on_stop, priority, grace, seeds,
     settings) = job
    table = read_table(table_path)
    spec = load_spec(study_path).with_settings(early_stopping={"on_stop": on_stop})
    max_t = max(int(r.finals.get("epochs_run") or len(r.epochs))
                for r in table.configs.values() if not r.failed)
    cache = settings.get("runs_dir")
    stored = {seed: _cached(cache, label, seed) for seed in seeds} if cache else {}
    runs = {seed: hit[1] for seed, hit in stored.items() if hit is not None}
    version = next((hit[0] for hit in stored.values() if hit is not None), "?")
    todo = [seed for seed in seeds if seed not in runs]
    if todo:
        moasha = Moasha(Path(settings["python"]))
        try:
            for seed in todo:
                moasha.init(space_for(spec, resource), max_t, grace,
                            settings["reduction_factor"], settings["brackets"], seed,
                            priority, settings["sort"])
                runs[seed] = replay_scheduler(table, spec, moasha, label=label, seed=seed,
                                              workers=settings["workers"],
                                              budget_j=settings["budget_j"],
                                              n_trials=settings["n_trials"],
                                              resource=resource,
                                              stop_at_ratio=settings.get("stop_at_level"))
                version = moasha.version
                if cache:
                    path = _cache_path(cache, label, seed)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(pickle.dumps((version, runs[seed])))
        finally:
            moasha.close()
    return [(label, version, [runs[seed] for seed in seeds])]


def _cache_path(cache: str, label: str, seed: int) -> Path:
    return Path(cache) / label.replace("/", "_") / f"{seed}.pkl"


def _cached(cache: str, label: str, seed: int):
    """(syne-tune version, ReplayRun) of a run stored by an earlier invocation, or None."""
    path = _cache_path(cache, label, seed)
    return pickle.loads(path.read_bytes()) if path.exists() else None


def runs_dir(base: str, table_path: Path, study_path: Path, settings: dict) -> str:
    """``base``/<a digest of the table, the study and every setting a MOASHA run depends
    on>: runs stored there are reused only by an invocation that would repeat them."""
    key = json.dumps({"table": hashlib.sha256(table_path.read_bytes()).hexdigest(),
                      "study": hashlib.sha256(study_path.read_bytes()).hexdigest(),
                      **{k: settings[k] for k in ("workers", "budget_j", "n_trials",
                                                  "brackets", "reduction_factor")},
                      # Only where set, so that full runs keep the digest they had.
                      **({"stop_at_level": settings["stop_at_level"]}
                         if settings.get("stop_at_level") is not None else {})},
                     sort_keys=True)
    return str(Path(base) / hashlib.sha256(key.encode()).hexdigest()[:16])


def _ecotune_runs(job: tuple) -> list:
    table_path, study_path, method, seed = job
    import torch

    torch.set_num_threads(1)
    spec = load_spec(study_path).with_overrides(seed=seed)
    return [(method.label, None, replay(read_table(table_path), spec, [method])[method.label])]


def ecotune_methods(table, spec, n_trials: int, only: list[str] | None,
                    first_rung: int | None = None) -> list[Method]:
    """search_efficiency.py's replay methods (``_replay_targets.methods``, with its
    ``--first-rung`` for +sh and +hb), the slow ones only where named; none for
    ``["none"]``."""
    from _replay_targets import methods

    if only == ["none"]:
        return []
    halving = {"min_epochs": first_rung} if first_rung else None
    stopping = spec.with_settings(early_stopping=halving or {}).early_stopping
    chosen = methods(len(table.configs), n_trials,
                     max(len(r.epochs) for r in table.configs.values()),
                     stopping.min_epochs, stopping.reduction_factor, None, halving)
    if only:
        missing = sorted(set(only) - {m.label for m in chosen})
        if missing:
            raise SystemExit(f"peer_moasha.py: unknown ecotune method {missing[0]!r}; "
                             f"expected one of {[m.label for m in chosen]}")
        return [m for m in chosen if m.label in only]
    return [m for m in chosen if m.label not in SLOW]


def reach_levels(runs) -> dict[float, np.ndarray]:
    return {level: np.array([energy_to_reach(r.cumulative_energy_j, r.hypervolume_ratio,
                                             level) for r in runs]) for level in LEVELS}


def _censored_mean(reach: np.ndarray, totals: np.ndarray) -> float:
    return float(np.where(np.isnan(reach), totals, reach).mean())


def best_label(runs: dict, labels: list[str]) -> str | None:
    """Of ``labels``, the one with the least mean search energy to 99 %: among those that
    reached it in every run where any did (T1's rule), else the least censored mean."""
    if not labels:
        return None
    full = [lb for lb in labels if not np.isnan(reach_levels(runs[lb])[0.99]).any()]
    pool = full or labels
    return min(pool, key=lambda lb: _censored_mean(
        reach_levels(runs[lb])[0.99], np.array([r.energy_j.sum() for r in runs[lb]])))


def t3_line(ecotune_label: str, ecotune_reach_99: np.ndarray, ecotune_totals: np.ndarray,
            peer: dict) -> str:
    """``T3 <ratio> (goal <= 1.0) holds|misses``: ecotune's best method's mean search
    energy to 99 % over MOASHA's best variant's (``peer``: the ``--json`` file's
    ``"best"`` entry). Holds only where the ratio, or its upper bound, is at most 1."""
    ratio = energy_ratio(ecotune_reach_99, ecotune_totals,
                         np.array(peer["energy_to_99_j"], dtype=float),
                         np.array(peer["search_energy_j"], dtype=float))
    holds = ratio.bound in ("=", "<=") and ratio.value <= 1.0
    return (f"T3 {ratio.text()} ({ecotune_label}'s energy to 99 % / {peer['label']}'s, "
            f"syne-tune {peer['syne_tune']}) (goal <= 1.0) {'holds' if holds else 'misses'}")


def peer_figures(label: str, runs: list, version: str) -> dict:
    """One MOASHA variant's per-run figures, as ``--json`` writes them."""
    reach = reach_levels(runs)
    out = {"label": label, "syne_tune": version, "seeds": [r.seed for r in runs],
           "search_energy_j": [float(r.energy_j.sum()) for r in runs],
           "final_ratio": [float(r.hypervolume_ratio[-1]) if len(r.hypervolume_ratio)
                           else 0.0 for r in runs],
           "trials": [len(r.states) for r in runs]}
    for level in LEVELS:
        out[f"energy_to_{level_tag(level)}_j"] = [None if math.isnan(v) else float(v)
                                                 for v in reach[level]]
    return out


def setup(python: Path) -> None:
    """Create ``benchmarks/.peer-venv`` (git-ignored) and install syne-tune into it."""
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", SYNE_TUNE], check=True)
    subprocess.run([str(python), "-c", "import syne_tune; print('syne-tune', "
                    "syne_tune.__version__, 'in', syne_tune.__file__)"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", default=str(TABLES / "fashion_mnist_cnn.csv"))
    parser.add_argument("--study", default=str(STUDIES / "fashion_mnist_cnn.toml"),
                        help="the table's study file")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1,
                        help="MOASHA's simulated workers (1: sequential, as ecotune's replay)")
    parser.add_argument("--budget-j", type=float,
                        help="MOASHA's search-energy budget (default: a full grid's, the table's "
                             "total with its test evaluations)")
    parser.add_argument("--n-trials", type=int,
                        help="ecotune's trials per run (default: the table's configurations, as "
                             "search_efficiency.py); MOASHA: none beyond the budget")
    parser.add_argument("--grace-period",
                        help="MOASHA's first rung, or several (e.g. 3,1: each a variant, "
                             "labelled @gN where not the default; default: the study's "
                             "[early_stopping] min_epochs, ecotune's successive halving's)")
    parser.add_argument("--first-rung", type=int,
                        help="the first rung of ecotune's +sh and +hb methods, as "
                             "search_efficiency.py --replay --first-rung")
    parser.add_argument("--stop-at-level", type=float, metavar="FRACTION",
                        help="end a MOASHA run once its hypervolume reaches this fraction of "
                             "the reference (e.g. 0.995), instead of at the budget: every "
                             "decision before that point is the full run's, so its energy to "
                             "each level up to FRACTION (99 %%, 99.5 %%) is exactly the full "
                             "run's; its search energy, final ratio and log differences are "
                             "those at the stop. A run that never gets there runs to the "
                             "budget")
    parser.add_argument("--sort", choices=("fast", "shipped"), default="fast",
                        help="MOASHA's non-dominated sort: syne-tune's own (shipped) or "
                             "_moasha_sort's, the same answers faster (fast, checked against "
                             "syne-tune's when the driver starts)")
    parser.add_argument("--reduction-factor", type=float,
                        help="default: the study's [early_stopping] reduction_factor")
    parser.add_argument("--brackets", type=int, default=1)
    parser.add_argument("--priorities", default=",".join(PRIORITIES),
                        help="MOASHA's rung ranking: shipped (syne-tune's default), rank "
                             "(its sort read as ranks, +rank), or both")
    parser.add_argument("--moasha", help="only these MOASHA variants, e.g. moa+rk/c,moa/c "
                                         "(default: every one the study allows)")
    parser.add_argument("--ecotune-methods",
                        help="ecotune's methods to replay beside MOASHA, e.g. grid,tpe+sh/c, "
                             "or none (default: search_efficiency.py's, but gp and skopt*)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--runs-dir",
                        help="keep each MOASHA run here (a pickle per variant and seed, under "
                             "a digest of the table, study and settings) and reuse those "
                             "already there: several invocations can share the work, and an "
                             "interrupted one loses only its unfinished runs")
    parser.add_argument("--only-seeds", metavar="A-B",
                        help="with --runs-dir: run these of the seeds (by position, e.g. 0-14) "
                             "into it, then stop; a later invocation reads them all")
    parser.add_argument("--json", help="write MOASHA's per-run figures here (for "
                                       "search_efficiency.py --peer)")
    parser.add_argument("--peer-python", default=str(PEER_PYTHON),
                        help="the peer environment's python (with syne-tune)")
    parser.add_argument("--setup", action="store_true",
                        help="create benchmarks/.peer-venv with syne-tune, then exit")
    args = parser.parse_args()
    python = Path(args.peer_python)
    if args.setup:
        setup(python)
        return
    if not python.exists():
        print(f"peer_moasha.py: no peer environment at {python}; run "
              f"'{Path(sys.executable).name} benchmarks/peer_moasha.py --setup' first",
              file=sys.stderr)
        raise SystemExit(2)
    sys.path.insert(0, str(HERE))  # _replay_targets
    table_path, study_path = Path(args.table), Path(args.study)
    table, spec = read_table(table_path), load_spec(study_path)
    size = len(table.configs)
    budget_j = args.budget_j or table.total_energy_j()
    stopping = spec.early_stopping
    try:
        graces = tuple(int(g) for g in args.grace_period.split(",")) if args.grace_period \
            else (stopping.min_epochs,)
    except ValueError:
        parser.error(f"--grace-period: whole numbers of epochs, e.g. 3,1 "
                     f"(got {args.grace_period!r})")
    if min(graces) < 1:
        parser.error("--grace-period: at least 1 epoch")
    if args.stop_at_level is not None and not 0 < args.stop_at_level <= 1:
        parser.error(f"--stop-at-level: a fraction in (0, 1], e.g. 0.995 (got "
                     f"{args.stop_at_level:g})")
    settings = {"python": str(python), "workers": args.workers, "budget_j": budget_j,
                "n_trials": None, "brackets": args.brackets, "sort": args.sort,
                "grace_period": graces[0] if len(graces) == 1 else list(graces),
                "stop_at_level": args.stop_at_level,
                "reduction_factor": args.reduction_factor or stopping.reduction_factor}
    if args.runs_dir:
        settings["runs_dir"] = runs_dir(args.runs_dir, table_path, study_path, settings)
    elif args.only_seeds:
        parser.error("--only-seeds needs --runs-dir")
    seed0 = spec.study.seed or 0
    seeds = [seed0 + r for r in range(args.seeds)]
    if args.only_seeds:
        try:
            low, high = (int(x) for x in args.only_seeds.split("-"))
        except ValueError:
            parser.error(f"--only-seeds: A-B, positions of seeds (got {args.only_seeds!r})")
        if not 0 <= low <= high < len(seeds):
            parser.error(f"--only-seeds: positions within 0-{len(seeds) - 1}")
    chosen = ecotune_methods(table, spec, args.n_trials or size,
                             args.ecotune_methods.split(",") if args.ecotune_methods else None,
                             args.first_rung)
    priorities = tuple(args.priorities.split(","))
    unknown = sorted(set(priorities) - set(PRIORITIES))
    if unknown:
        parser.error(f"unknown priority {unknown[0]!r}; expected {', '.join(PRIORITIES)}")
    chosen_variants = variants(spec, priorities, graces)
    if args.moasha:
        wanted = args.moasha.split(",")
        missing = sorted(set(wanted) - {v[0] for v in chosen_variants})
        if missing:
            parser.error(f"unknown MOASHA variant {missing[0]!r}; expected one of "
                         f"{[v[0] for v in chosen_variants]}")
        chosen_variants = [v for v in chosen_variants if v[0] in wanted]
    # A job per variant and SEED_CHUNK seeds, so that the processes stay evenly busy.
    to_run = seeds[low:high + 1] if args.only_seeds else seeds
    jobs = [(_moasha_runs, (str(table_path), str(study_path), label, resource, on_stop,
                            priority, grace, to_run[i:i + SEED_CHUNK], settings))
            for label, resource, on_stop, priority, grace in chosen_variants
            for i in range(0, len(to_run), SEED_CHUNK)]
    if args.only_seeds:
        _run(jobs, args.processes)
        print(f"{len(to_run)} seeds ({to_run[0]}-{to_run[-1]}) of "
              f"{', '.join(v[0] for v in chosen_variants)} stored in {settings['runs_dir']}")
        return
    jobs += [(_ecotune_runs, (str(table_path), str(study_path), m, s)) for m in chosen
             for s in seeds]
    print(f"MOASHA (syne-tune) beside ecotune on {table_path} ({size} configurations; meter "
          f"{table.header.get('meter')}; recorded on {table.header.get('machine')})")
    print(f"{args.seeds} seeds ({seeds[0]}-{seeds[-1]}) per method; MOASHA: rungs from "
          f"{'/'.join(map(str, graces))} epochs, reduction factor "
          f"{settings['reduction_factor']:g}, "
          f"{args.brackets} bracket(s), {args.workers} simulated worker(s), until "
          f"{budget_j:.5g} J of search energy (a full grid's)"
          + (f" or until {args.stop_at_level:.1%} of the reference hypervolume"
             if args.stop_at_level else "") + "; ecotune: "
          f"{args.n_trials or size} trials per run ({size} for grid); {args.processes} "
          "process(es)")
    started = time.perf_counter()
    results = _run(jobs, args.processes)
    wall_s = time.perf_counter() - started
    runs: dict = {}
    version = "?"
    for part in results:
        for label, v, group in part:
            runs.setdefault(label, []).extend(group)
            version = v or version
    peer_labels = [v[0] for v in chosen_variants]
    ordered = {m.label: sorted(runs[m.label], key=lambda r: r.seed) for m in chosen}
    ordered.update({label: sorted(runs[label], key=lambda r: r.seed)
                    for label in peer_labels})
    print("\nmoa: syne-tune's MOASHA over the study's space; -r: epochs as its resource; "
          "+rk: its sort read as ranks; /c: a stopped trial's point counts")
    print(f"\nwall time {wall_s:.1f} s; per method, the sum of its runs' times (s):")
    print("  " + ", ".join(f"{k} {sum(r.wall_s for r in g):.1f}" for k, g in ordered.items()))
    from _replay_targets import print_summary

    quarter_j = 0.25 * table.total_energy_j()
    summary = summarize(ordered, quarter_j)
    if args.stop_at_level:
        print(f"\n--stop-at-level {args.stop_at_level:g}: a MOASHA run that reached "
              f"{args.stop_at_level:.1%} of the reference hypervolume ended there; its "
              "energies to that level and below are the full run's, its search J, final "
              "ratio, log differences and any level above are those at the stop")
    print_summary(summary, quarter_j)
    print("\nMOASHA: mean trials per run (all started within the budget): " + ", ".join(
        f"{lb} {np.mean([len(r.states) for r in ordered[lb]]):.0f}" for lb in peer_labels))

    mine = [m.label for m in chosen if m.label not in BASELINES]
    best_mine, best_peer = best_label(ordered, mine), best_label(ordered, peer_labels)
    peer = peer_figures(best_peer, ordered[best_peer], version)
    if args.json:
        # The top-level method, seeds, search_energy_j and energy_to_99_j: the best
        # variant's, as search_efficiency.py --peer reads them (/work/notes/peer.md).
        out = {"table": str(table_path),
               "table_sha256": hashlib.sha256(table_path.read_bytes()).hexdigest(),
               "method": best_peer, "seeds": peer["seeds"],
               "search_energy_j": peer["search_energy_j"],
               "energy_to_99_j": peer["energy_to_99_j"],
               "study": str(study_path), "budget_j": budget_j,
               "workers": args.workers, "grace_period": settings["grace_period"],
               "reduction_factor": settings["reduction_factor"],
               "brackets": args.brackets, "sort": args.sort, "syne_tune": version,
               "stop_at_level": args.stop_at_level,
               "best": peer,
               "variants": {lb: peer_figures(lb, ordered[lb], version)
                            for lb in peer_labels}}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"MOASHA's figures written to {args.json}")
    print(f"\nbest MOASHA variant: {best_peer}; ecotune's best method (of "
          f"{', '.join(mine) or 'none'}): {best_mine}")
    if best_mine is None:
        print("T3 pending: no ecotune method but grid and random was replayed "
              "(goal <= 1.0)")
        return
    group = ordered[best_mine]
    print(t3_line(best_mine, reach_levels(group)[0.99],
                  np.array([r.energy_j.sum() for r in group]), peer))


def _run(jobs: list, processes: int) -> list:
    if processes > 1:
        import multiprocessing

        with ProcessPoolExecutor(processes,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_call, jobs))
    return [_call(job) for job in jobs]


def _call(job: tuple) -> list:
    function, arguments = job
    return function(arguments)


if __name__ == "__main__":
    main()
