"""Both hardware energy models, exact against tiny layers counted by hand (plain loops)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ecotune.energy.hardware import (
    asic_layer_costs,
    energy_profile,
    energy_ratio,
    eyeriss_energy,
    eyeriss_layer_costs,
    inference_energy_pj,
    trace_layers,
)

W3 = [[1.0, 0.0, 2.0],
      [0.0, -3.0, 0.0],
      [4.0, 0.0, 5.0]]           # 5 non-zeros of 9
X4 = [[1.0, 0.0, 2.0, 0.0],
      [0.0, 3.0, 0.0, 1e-40],    # 1e-40 < 2^-126: counts as zero
      [2.0, 0.0, 0.0, 1.0],
      [0.0, 1.0, 1.0, 0.0]]      # 7 non-zeros of 16


def _conv() -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(W3).view(1, 1, 3, 3))
    return conv


def _is_nz(v: float) -> bool:
    return abs(v) > 2.0 ** -126


def _hand_conv_counts() -> dict[str, float]:
    """Every count of the 1-channel 3x3 conv on the 4x4 input, by loops."""
    outputs, nz_macs, unfolded = [], 0, 0
    for i in range(2):
        for j in range(2):
            acc = 0.0
            for a in range(3):
                for b in range(3):
                    x, w = X4[i + a][j + b], W3[a][b]
                    acc += x * w
                    nz_macs += _is_nz(x) and _is_nz(w)
                    unfolded += _is_nz(x)
            outputs.append(acc)
    return {"nnz_w": 5, "n_w": 9, "nnz_x": 7, "n_x": 16, "n_y": 4,
            "nnz_y": sum(_is_nz(y) for y in outputs), "macs": 4 * 9, "nz_macs": nz_macs,
            "unfolded": unfolded, "P": 4, "d": 1}


def test_asic_conv_layer_exact() -> None:
    c = _hand_conv_counts()
    # By eye: non-zero-weight x non-zero-input pairs per output position 4, 1, 1, 2; non-zero
    # inputs in each 3x3 window 4, 3, 4, 4.
    assert (c["nz_macs"], c["unfolded"]) == (8, 15)
    expected = (1950 * (c["nnz_w"] + c["nnz_x"] + c["nnz_y"])
                + 3.7 * c["macs"] * (c["nnz_w"] / c["n_w"]) * (c["nnz_x"] / c["n_x"]))
    dense = 1950 * (c["n_w"] + c["n_x"] + c["n_y"]) + 3.7 * c["macs"]
    x = torch.tensor(X4).view(1, 1, 4, 4)
    (cost,) = asic_layer_costs(_conv(), x)
    assert (cost.nnz_params, cost.nnz_inputs, cost.nnz_outputs) == (5, 7, c["nnz_y"])
    assert cost.energy_pj == pytest.approx(expected, rel=1e-12)
    assert inference_energy_pj(_conv(), x, dense=True) == pytest.approx(dense, rel=1e-12)
    assert energy_ratio(_conv(), x) == pytest.approx(expected / dense, rel=1e-12)


def test_eyeriss_conv_layer_exact() -> None:
    c = _hand_conv_counts()
    w, p, d = c["nnz_w"], c["P"], c["d"]
    compute = 3 * c["nz_macs"]
    weights = (math.ceil(p / 12) * w * 6 + p * w * 1
               + (math.ceil(p / 12) * max(0, w - 4096) + min(4096, w)) * 200)
    inputs = (c["unfolded"] * math.ceil(d / 14) * 6 + c["unfolded"] * d * 1
              + c["nnz_x"] * 200 + p * d * 200)
    (cost,) = eyeriss_layer_costs(_conv(), torch.tensor(X4).view(1, 1, 4, 4))
    assert (cost.compute, cost.weights, cost.inputs) == (compute, weights, inputs)
    assert (cost.nonzero_macs, cost.nnz_unfolded_inputs) == (8, 15)


def _linear() -> nn.Linear:
    linear = nn.Linear(3, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 2.0]]))
        linear.bias.copy_(torch.tensor([0.0, 1.0]))
    return linear


def test_linear_layer_exact_in_both_models() -> None:
    x = torch.tensor([[1.0, 0.0, 2.0]])
    # y = [1 - 2 + 0, 4 + 1] = [-1, 5]: 2 non-zeros. Params: weight 3 of 6 + bias 1 of 2.
    asic = 1950 * (4 + 2 + 2) + 3.7 * 6 * (4 / 8) * (2 / 3)
    assert inference_energy_pj(_linear(), x) == pytest.approx(asic, rel=1e-12)
    # Eyeriss: nnz(W) = 3, nnz(X) = 2, d = 2 (bias not costed).
    compute, weights = 3 * 3, 207 * 3
    inputs = math.ceil(2 / 14) * 6 * 2 + 2 * 1 * 2 + 200 * (0 + 2) + 200 * 2
    (cost,) = eyeriss_layer_costs(_linear(), x)
    assert (cost.compute, cost.weights, cost.inputs) == (compute, weights, inputs)


def test_per_sample_means_over_the_batch() -> None:
    x = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]])  # nnz 2 and 3
    (cost,) = eyeriss_layer_costs(_linear(), x)
    per_sample = [math.ceil(2 / 14) * 6 * n + 2 * n + 200 * n + 400 for n in (2, 3)]
    assert cost.inputs == pytest.approx(sum(per_sample) / 2)
    (asic,) = asic_layer_costs(_linear(), x)
    assert asic.nnz_inputs == 2.5


def test_pass_through_layers_and_the_error_naming_an_unknown_one() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(inplace=True),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, 3))
    x = torch.randn(4, 1, 4, 4)
    traces = trace_layers(net, x)
    assert [t.name for t in traces] == ["0", "6"]
    # The in-place ReLU did not change the conv output that was recorded.
    assert (traces[0].outputs < 0).any()
    assert 0 < energy_ratio(net, x) <= 1 and eyeriss_energy(net, x) > 0
    assert net.training  # the mode is restored
    bad = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid())
    with pytest.raises(ValueError, match="layer '1' of type Sigmoid cannot be costed"):
        trace_layers(bad, torch.randn(2, 4))


def test_energy_profile_by_layer_and_type() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    x = torch.randn(8, 1, 4, 4)
    layers = energy_profile(net, x, hardware="asic")
    assert list(layers.columns) == ["layer", "type", "energy_pj", "share"]
    assert layers["energy_pj"].sum() == pytest.approx(inference_energy_pj(net, x))
    types = energy_profile(net, x, hardware="eyeriss", by="type")
    assert types["type"].tolist() == ["Conv2d", "Linear"]  # convs dominate
    assert types["n_layers"].tolist() == [2, 1]
    assert types["share"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown hardware model 'tpu'"):
        energy_profile(net, x, hardware="tpu")


def test_weight_reuse_shares_the_weight_reads() -> None:
    from ecotune.energy.hardware import asic_energy_pj

    one = asic_energy_pj(8, 4, 3, 2, 2, 6)
    shared = asic_energy_pj(8, 4, 3, 2, 2, 6, weight_reuse=4)
    assert one - shared == pytest.approx(1950 * 4 * (1 - 1 / 4))


def test_inputs_are_moved_to_the_models_device() -> None:
    """A model left on another device (a GPU after training; "meta" here, which runs
    without data) gets its inputs moved there, by every estimator built on the traces."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).to("meta")
    traces = trace_layers(net, torch.ones(5, 2, 2))  # a CPU batch
    assert [t.inputs.device.type for t in traces] == ["meta", "meta"]
    cpu_net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.ones(5, 2, 2)
    assert trace_layers(cpu_net, x)[0].inputs.device == x.device  # already there: as is
