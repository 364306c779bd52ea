"""Each knob does what it claims: width, EAT on torchvision models, freezing, low
precision, early stopping, per-epoch energy."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ecotune.data import load_data
from ecotune.knobs import EATPenalty, hidden_activation_modules
from ecotune.models import build_model, count_macs
from ecotune.training import StopTraining, TrainConfig, train


@pytest.fixture(scope="module")
def small_images():
    return load_data("fake", n_samples=64, image_shape=(3, 16, 16), n_classes=4)


@pytest.mark.parametrize(("model", "low", "high"), [("cnn", 0.2, 0.3), ("resnet18", 0.24, 0.26),
                                                    ("mobilenet_v2", 0.25, 0.4)])
def test_half_width_has_about_a_quarter_of_the_conv_macs(model: str, low: float,
                                                         high: float) -> None:
    shape = (1, 28, 28)
    half = count_macs(build_model(model, shape, 10, width=0.5), shape)["conv"]
    full = count_macs(build_model(model, shape, 10, width=1.0), shape)["conv"]
    # Both ends of a conv scale with width, so MACs scale with its square; the first conv
    # (fixed input channels) and depthwise convs scale linearly, hence the ranges.
    assert low <= half / full <= high


def test_torchvision_widths_are_multiples_of_8() -> None:
    for model in ("resnet18", "mobilenet_v2"):
        net = build_model(model, (3, 32, 32), 10, width=0.3)
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        assert all(c.out_channels % 8 == 0 for c in convs)


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_eat_penalty_hooks_torchvision_models(model: str) -> None:
    net = build_model(model, (3, 16, 16), 4, width=0.25)
    kinds = {type(m) for m in hidden_activation_modules(net)}
    assert kinds == ({nn.ReLU} if model == "resnet18" else {nn.ReLU6})
    with EATPenalty(net, lam=1.0) as eat:
        net.train()
        logits = net(torch.rand(2, 3, 16, 16))
        n_terms = len(eat._terms)
        penalty = eat.penalty()
        (logits.sum() + penalty).backward()  # differentiable through in-place activations
    # ResNet-18 reuses its ReLU modules: every call is a hidden layer (1 stem + 2 per block).
    assert n_terms == (17 if model == "resnet18" else 35)
    assert 0.0 < float(penalty.detach()) <= 1.0
    assert eat._handles == []  # hooks removed on exit


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_eat_trains_torchvision_models(small_images, model: str) -> None:
    config = TrainConfig(model=model, width=0.25, epochs=1, batch_size=32, eat_lambda=1.0)
    result = train(small_images, config)
    assert result.epochs_run == 1 and result.macs > 0


def test_freezing_stops_updates_to_all_but_the_last_layer(small_images, monkeypatch) -> None:
    import ecotune.training._loop as training

    built: list[nn.Module] = []
    real_build = training.build_model
    monkeypatch.setattr(training, "build_model",
                        lambda *a, **k: built.append(real_build(*a, **k)) or built[0])
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch(record) -> None:
        snapshots[record.epoch] = copy.deepcopy(built[0].state_dict())

    result = train(small_images, TrainConfig(model="cnn", epochs=3, freeze_at_epoch=2,
                                             lr=0.01), on_epoch=on_epoch)
    before, after = snapshots[1], snapshots[3]
    last = [n for n, m in result.model.named_modules() if isinstance(m, nn.Linear)][-1]
    for name, value in after.items():
        if name.startswith(f"{last}."):
            assert not torch.equal(value, before[name]), f"{name} should still learn"
        else:  # weights, biases and BatchNorm running statistics alike
            assert torch.equal(value, before[name]), f"{name} changed after freezing"
    assert result.curve[1].decisions == ("freeze",)
    assert result.curve[0].decisions == () and result.curve[2].decisions == ()


def test_low_precision_really_computes_in_bfloat16(small_images, monkeypatch) -> None:
    dtypes: list[torch.dtype] = []
    import ecotune.training._loop as training

    real_build = training.build_model

    def build_with_probe(*args, **kwargs):
        net = real_build(*args, **kwargs)
        conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(
            lambda m, i, o: dtypes.append(o.dtype) if m.training else None)
        return net

    monkeypatch.setattr(training, "build_model", build_with_probe)
    n_batches = 2  # 64 examples x 0.6 train share / batch 32 -> 2 batches per epoch
    result = train(small_images, TrainConfig(model="cnn", epochs=2, batch_size=32,
                                             low_precision_at_epoch=2, device="cpu"))
    assert dtypes[:n_batches] == [torch.float32] * n_batches
    assert dtypes[n_batches:] == [torch.bfloat16] * n_batches
    assert result.curve[1].decisions == ("low_precision",)


def test_low_precision_on_the_default_device_is_what_auto_gives_on_this_machine(
        small_images) -> None:
    """``device = "auto"`` (the default) is the first GPU where CUDA is, else the CPU;
    ``auto`` low precision is float16 on a GPU and bfloat16 on the CPU."""
    from ecotune.devices import resolve_device

    config = TrainConfig(model="cnn", epochs=1, batch_size=32, low_precision_at_epoch=1)
    assert config.device == "auto"
    result = train(small_images, config)
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert result.device == resolve_device("auto") == expected
    assert result.low_precision_dtype == ("float16" if expected.type == "cuda" else "bfloat16")


def test_early_stopping_with_patience_restores_the_best_epoch() -> None:
    data = load_data("digits")
    # lr = 0: nothing is learnt, so validation accuracy never improves after epoch 1.
    result = train(data, TrainConfig(model="mlp", epochs=10, lr=0.0, optimizer="sgd",
                                     early_stopping_patience=2))
    assert result.stop_reason == "patience"
    assert result.epochs_run == 3
    assert result.val_accuracy == result.curve[0].val_accuracy


def test_an_epoch_watcher_sees_every_epoch_and_can_stop_training() -> None:
    data = load_data("digits")
    seen = []

    def stop_at_two(record) -> None:
        seen.append(record.epoch)
        if record.epoch == 2:
            raise StopTraining("energy_budget")

    result = train(data, TrainConfig(model="mlp", epochs=4), on_epoch=stop_at_two)
    assert seen == [1, 2] and [r.epoch for r in result.curve] == [1, 2]
    assert result.stop_reason == "energy_budget" and result.epochs_run == 2


def test_patience_watches_after_the_callers_watcher_so_the_stopping_epoch_is_reported(
        ) -> None:
    """Patience stops at epoch 3 (lr = 0: no improvement after epoch 1); the caller's
    watcher (a measurement window in a study) still saw epoch 3."""
    seen = []
    result = train(load_data("digits"),
                   TrainConfig(model="mlp", epochs=10, lr=0.0, optimizer="sgd",
                               early_stopping_patience=2),
                   on_epoch=lambda record: seen.append(record.epoch))
    assert seen == [1, 2, 3] and result.stop_reason == "patience"


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def test_eat_lowers_the_asic_energy_ratio(digits) -> None:
    from ecotune.energy.hardware import energy_ratio

    base = TrainConfig(model="cnn", epochs=6, lr=3e-3)
    sample = digits.x_val[:128]
    dense = train(digits, base, seed=0)
    sparse = train(digits, TrainConfig(**{**base.__dict__, "eat_lambda": 1.0}), seed=0)
    for reuse in (1, len(sample)):  # per inference, and as the authors cost a batch
        assert (energy_ratio(sparse.model, sample, weight_reuse=reuse)
                < energy_ratio(dense.model, sample, weight_reuse=reuse))


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("budget", [0.5, 0.3, 0.2])
def test_projection_meets_the_budget(digits, model: str, budget: float) -> None:
    from ecotune.energy.hardware import dense_energy, eyeriss_energy
    from ecotune.training import BUDGET_SAMPLE

    result = train(digits, TrainConfig(model=model, epochs=2, lr=3e-3, energy_budget=budget))
    assert result.budget_energy_ratio <= budget
    # Recomputed independently on the trained model.
    sample = digits.x_train[:BUDGET_SAMPLE]
    assert eyeriss_energy(result.model, sample) <= budget * dense_energy(result.model, sample)
    if budget >= 0.3:
        assert result.val_accuracy > 0.5  # still a model, not a wreck


def test_pruned_weights_stay_zero_through_updates(digits) -> None:
    from ecotune.knobs.budget import EnergyBudgetProjector

    torch.manual_seed(0)
    net = build_model("mlp", digits.input_shape, 10)
    projector = EnergyBudgetProjector(net, digits.x_train[:64], budget=0.3, every_batches=1000)
    projector.project(0.3)
    zeros = {name: (p == 0) for name, p in net.named_parameters() if p.dim() > 1}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for start in range(0, 320, 64):  # updates between projections
        loss = nn.functional.cross_entropy(net(digits.x_train[start:start + 64]),
                                           digits.y_train[start:start + 64])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        projector.after_step(0.1)
    for name, p in net.named_parameters():
        if name in zeros:
            assert zeros[name].any() and (p[zeros[name]] == 0).all()


def test_budget_schedules_approach_the_target() -> None:
    from ecotune.knobs.budget import EnergyBudgetProjector

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    sample = torch.rand(2, 1, 2, 2)
    linear = EnergyBudgetProjector(net, sample, 0.2, schedule="linear", warmup_epochs=4)
    exponential = EnergyBudgetProjector(net, sample, 0.2, schedule="exponential",
                                        warmup_epochs=4)
    assert [linear.fraction_at(t) for t in (0, 2, 4, 9)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    assert exponential.fraction_at(2) == pytest.approx(0.2**0.5)
    with pytest.raises(ValueError, match="energy_budget must be in"):
        EnergyBudgetProjector(net, sample, 1.5)
    with pytest.raises(ValueError, match="unknown budget schedule"):
        EnergyBudgetProjector(net, sample, 0.5, schedule="cosine")


def test_input_masking_cuts_first_layer_inputs(digits) -> None:
    from ecotune.energy.hardware import eyeriss_layer_costs

    masked = train(digits, TrainConfig(model="mlp", epochs=1, input_keep_ratio=0.5))
    assert masked.input_mask is not None and float(masked.input_mask.mean()) == 0.5
    sample = digits.x_val[:64]
    plain = eyeriss_layer_costs(masked.model, sample)[0].nnz_inputs
    cut = eyeriss_layer_costs(masked.model, sample * masked.input_mask)[0].nnz_inputs
    assert cut < plain
