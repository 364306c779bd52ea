"""Energy-budget training on Fashion-MNIST: accuracy and estimated energy per budget.

The built-in cnn trains on Fashion-MNIST with the weights projected onto a fraction of the
dense model's estimated inference energy (Eyeriss-style model; docs/knobs.md) every
10 steps, once per budget, same seed and settings. Printed per budget: test accuracy, the
final model's estimated energy over the dense model's (the budget must hold), the share of
weights kept, and the accuracy against the dense (budget 1.0) run.

Target (knobs issue): at budget 0.5, within 1 point of dense accuracy.

    .venv/bin/python benchmarks/budget_fashion_mnist.py [--epochs 5] [--train-samples N]
        [--budgets 1,0.5,0.3,0.2]
"""

from __future__ import annotations

import argparse
import time

import torch

from ecotune.data import load_data
from ecotune.energy.hardware import dense_energy, eyeriss_energy
from ecotune.training import BUDGET_SAMPLE, TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--budgets", default="1,0.5,0.3,0.2")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", default="none", choices=["none", "linear", "exponential"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-samples", type=int, default=None,
                        help="train on a fixed random subset (default: all 54,000)")
    args = parser.parse_args()
    data = load_data("fashion_mnist", train_samples=args.train_samples)
    print(f"Fashion-MNIST {data.sizes()}, cnn, {args.epochs} epochs, Adam lr {args.lr}, "
          f"batch 128, projection every 10 steps, schedule {args.schedule}, seed 0")
    print(f"{'budget':>7} {'test acc':>9} {'energy/dense':>13} {'weights kept':>13} "
          f"{'vs dense':>9} {'time s':>7}")
    dense_accuracy = None
    for budget in (float(b) for b in args.budgets.split(",")):
        t0 = time.perf_counter()
        result = train(data, TrainConfig(
            model="cnn", epochs=args.epochs, lr=args.lr, batch_size=128, threads=args.threads,
            energy_budget=None if budget >= 1 else budget, budget_schedule=args.schedule,
            budget_warmup_epochs=max(1, args.epochs // 2)))
        weights = [m.weight for m in result.model.modules()
                   if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        kept = sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)
        if dense_accuracy is None:
            dense_accuracy = result.test_accuracy
        # Measured the same way for every run, the dense one included (its ratio is below 1
        # too: ReLU outputs are sparse).
        sample = data.x_train[:BUDGET_SAMPLE]
        ratio = eyeriss_energy(result.model, sample) / dense_energy(result.model, sample)
        print(f"{budget:>7g} {result.test_accuracy:>9.4f} {ratio:>13.4f} {kept:>13.1%} "
              f"{(result.test_accuracy - dense_accuracy) * 100:>+8.2f}p "
              f"{time.perf_counter() - t0:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
