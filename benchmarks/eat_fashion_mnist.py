"""EAT on Fashion-MNIST: standard training against the EAT penalty at a few lambdas.

The built-in cnn trains on Fashion-MNIST (54,000 training images; Debian's
dataset-fashion-mnist package or torchvision's layout under $ECOTUNE_DATA) with the same
seed and settings, once per lambda; for each, the test accuracy and the zero-skipping ASIC
energy ratio (EAT's metric; docs/knobs.md) on a batch of 512 validation images,
costed as the authors' code does (weights read once for the batch), are printed,
with the ratio's decrease against standard training (lambda = 0).

Target (knobs issue): an EAT setting whose energy ratio is at least 15 % lower than
standard training at <= 1 point accuracy loss (the paper: 7-28 % lower within 3 points).

    .venv/bin/python benchmarks/eat_fashion_mnist.py [--epochs 5] [--train-samples N]
        [--lambdas 0.5,1,2]
"""

from __future__ import annotations

import argparse
import time

from ecotune.data import load_data
from ecotune.energy.hardware import energy_ratio
from ecotune.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lambdas", default="0.5,1,2")
    parser.add_argument("--sigma", type=float, default=1e-4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-samples", type=int, default=None,
                        help="train on a fixed random subset (default: all 54,000)")
    args = parser.parse_args()
    data = load_data("fashion_mnist", train_samples=args.train_samples)
    sample = data.x_val[:512]
    print(f"Fashion-MNIST {data.sizes()}, cnn, {args.epochs} epochs, Adam lr {args.lr}, "
          f"batch 128, sigma {args.sigma}, seed 0")
    print(f"{'lambda':>7} {'test acc':>9} {'energy ratio':>13} {'decrease':>9} {'time s':>7}")
    baseline = None
    for lam in [0.0, *(float(v) for v in args.lambdas.split(","))]:
        t0 = time.perf_counter()
        result = train(data, TrainConfig(model="cnn", epochs=args.epochs, lr=args.lr,
                                         batch_size=128, eat_lambda=lam, eat_sigma=args.sigma,
                                         threads=args.threads))
        # The authors' costing: the weights are read once for the whole batch.
        ratio = energy_ratio(result.model, sample, weight_reuse=len(sample))
        if baseline is None:
            baseline = (result.test_accuracy, ratio)
        decrease = 1 - ratio / baseline[1]
        print(f"{lam:>7g} {result.test_accuracy:>9.4f} {ratio:>13.4f} {decrease:>8.1%} "
              f"{time.perf_counter() - t0:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
