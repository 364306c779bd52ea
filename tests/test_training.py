"""The built-in trainer learns, `width` scales the models, EAT sparsifies activations."""

from __future__ import annotations

import math

import pytest
import torch

from ecotune.data import load_data
from ecotune.models import CNN, MLP, build_model, count_parameters
from ecotune.training import TrainConfig, accuracy, activation_density, train


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def test_digits_split_is_fixed_and_disjoint(digits) -> None:
    from sklearn.datasets import load_digits

    assert digits.sizes() == {"train": 1077, "val": 360, "test": 360}
    again = load_data("digits", val_fraction=0.2, test_fraction=0.2)
    assert torch.equal(again.x_test, digits.x_test)  # fixed split, not per call
    train_rows = {tuple(r) for r in digits.x_train.flatten(1).tolist()}
    held_out = digits.x_val.flatten(1).tolist() + digits.x_test.flatten(1).tolist()
    # The bundled set holds a few exact duplicate images; beyond those, no held-out
    # image may also be a training image.
    images = load_digits().images.reshape(len(load_digits().images), -1)
    duplicates = len(images) - len({tuple(r) for r in images.tolist()})
    assert sum(tuple(r) in train_rows for r in held_out) <= duplicates


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_trainer_learns_digits(digits, model: str) -> None:
    result = train(digits, TrainConfig(model=model, epochs=10, lr=3e-3, batch_size=64))
    assert result.test_accuracy >= 0.9
    assert result.val_accuracy >= 0.9
    assert result.epochs_run == 10 and len(result.curve) == 10
    # The curve is real: accuracy after the last epoch beats the first epoch's.
    assert result.curve[-1].val_accuracy > result.curve[0].val_accuracy


def test_same_seed_same_result(digits) -> None:
    config = TrainConfig(model="mlp", epochs=2)
    first, second = train(digits, config, seed=3), train(digits, config, seed=3)
    assert first.val_accuracy == second.val_accuracy
    assert [r.train_loss for r in first.curve] == [r.train_loss for r in second.curve]


def test_a_cpu_trial_starts_from_torch_manual_seed_s_weights(digits) -> None:
    """train() seeds a CPU trial without torch.manual_seed's CUDA part: the same initial
    weights as a model built right after torch.manual_seed(seed)."""
    import torch

    from ecotune.models import build_model

    result = train(digits, TrainConfig(model="mlp", epochs=1, lr=0.0), seed=7)
    torch.manual_seed(7)
    expected = build_model("mlp", digits.input_shape, digits.n_classes)
    for (name, got), want in zip(result.model.state_dict().items(),
                                 expected.state_dict().values(), strict=True):
        assert torch.equal(got, want), name


def _mlp_params(n_in: int, hidden: tuple[int, ...], n_out: int) -> int:
    sizes = (n_in, *hidden, n_out)
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0, 2.0])
def test_width_scales_mlp_parameters_exactly(width: float) -> None:
    hidden = (round(256 * width), round(128 * width))
    assert count_parameters(MLP((1, 8, 8), 10, width=width)) == _mlp_params(64, hidden, 10)


def test_width_scales_cnn_channels_and_parameters() -> None:
    half, full, double = (build_model("cnn", (1, 28, 28), 10, width=w) for w in (0.5, 1, 2))
    assert [m.out_channels for m in half.modules() if isinstance(m, torch.nn.Conv2d)] == [8, 16]
    assert [m.out_channels for m in double.modules()
            if isinstance(m, torch.nn.Conv2d)] == [32, 64]
    counts = [count_parameters(m) for m in (half, full, double)]
    assert counts[0] < counts[1] < counts[2]
    # Conv weights grow with the square of width (c_in x c_out): 3x3x16x32 -> 3x3x32x64.
    conv2 = [m for m in double.modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert conv2.weight.numel() == 4 * 3 * 3 * 16 * 32


def test_cnn_accepts_any_input_size() -> None:
    for shape in [(1, 8, 8), (3, 32, 32), (1, 3, 3), (1, 1, 1)]:
        out = CNN(shape, 4)(torch.zeros(2, *shape))
        assert out.shape == (2, 4)


def test_eat_gives_sparser_hidden_activations(digits) -> None:
    base = TrainConfig(model="cnn", epochs=6, lr=3e-3)
    dense = train(digits, base, seed=0)
    sparse = train(digits, TrainConfig(**{**base.__dict__, "eat_lambda": 1.0}), seed=0)
    assert sparse.activation_density < 0.85 * dense.activation_density
    assert sparse.test_accuracy >= 0.85  # still a useful model


def test_eat_penalty_with_lambda_zero_adds_no_hooks(digits) -> None:
    from ecotune.knobs import EATPenalty

    net = MLP((1, 8, 8), 10)
    with EATPenalty(net, lam=0.0) as eat:
        net(digits.x_train[:8])
        assert eat._handles == [] and float(eat.penalty()) == 0.0


def test_eat_penalty_matches_the_formula() -> None:
    from ecotune.knobs import EATPenalty

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 2), torch.nn.ReLU())
    x = torch.randn(5, 3)
    sigma, lam = 1e-2, 2.0
    with EATPenalty(net, lam=lam, sigma=sigma) as eat:
        net(x)
        got = float(eat.penalty().detach())
    with torch.no_grad():
        a1 = torch.relu(net[0](x))
        a2 = torch.relu(net[2](a1))
    terms = [float((a.pow(2) / (a.pow(2) + sigma)).sum() / a.numel()) for a in (a1, a2)]
    assert math.isclose(got, lam * sum(terms) / 2, rel_tol=1e-5)


def test_eat_rejects_a_negative_lambda() -> None:
    from ecotune.knobs import EATPenalty

    with pytest.raises(ValueError, match="sponge poisoning"):
        EATPenalty(MLP((1, 8, 8), 10), lam=-1.0)


def test_nan_loss_is_a_clear_error(digits) -> None:
    with pytest.raises(FloatingPointError, match="training loss became"):
        train(digits, TrainConfig(model="mlp", epochs=3, lr=1e6, optimizer="sgd"))


def test_accuracy_and_density_helpers() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2), torch.nn.ReLU())
    with torch.no_grad():
        net[1].weight.copy_(torch.eye(2))
        net[1].bias.zero_()
    x = torch.tensor([[1.0, -1.0], [-1.0, 2.0]])
    assert accuracy(net, x, torch.tensor([0, 1])) == 1.0
    assert activation_density(net, x) == 0.5


def test_fake_data_is_deterministic() -> None:
    a = load_data("fake", n_samples=40, image_shape=(3, 8, 8), n_classes=4)
    from ecotune.data import load_fake_splits

    b = load_fake_splits(n_samples=40, image_shape=(3, 8, 8), n_classes=4)
    assert torch.equal(a.x_train, b.x_train) and a.input_shape == (3, 8, 8)
    assert int(a.y_train.max()) < 4



def test_a_shorter_run_is_the_prefix_of_a_longer_one_bit_for_bit(digits, monkeypatch) -> None:
    """What a recording that trains each curve once to the largest ``epochs`` and reads the
    shorter values from its prefix would rely on (issue 19, item 2): on the CPU, nothing
    in training depends on the planned epochs. Runtime decisions at fixed epochs and EAT
    are fine. Not so ``early_stopping_patience`` (it restores the best epoch's weights at
    the end) and ``energy_budget`` (a last projection when training ends): they change
    the end of a run, so they are left out here."""
    import copy
    import dataclasses

    import ecotune.training._loop as loop
    from ecotune.training import evaluate_test

    knobs = dict(model="cnn", width=0.5, lr=3e-3, batch_size=64, eat_lambda=0.5,
                 freeze_at_epoch=3, low_precision_at_epoch=2, device="cpu")
    built: list[torch.nn.Module] = []
    build = loop.build_model

    def build_and_keep(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(loop, "build_model", build_and_keep)
    states: list[dict[str, torch.Tensor]] = []

    def keep_state(record) -> None:  # after each epoch: the weights the run has then
        states.append({k: v.detach().clone() for k, v in built[-1].state_dict().items()})

    long = train(digits, TrainConfig(epochs=4, **knobs), on_epoch=keep_state, test=False,
                 keep_states_at=(1, 3))
    assert len(states) == 4
    # What a recording keeps (train(keep_states_at=...)): the weights after those epochs.
    assert sorted(long.states) == [1, 3]
    for epoch, kept in long.states.items():
        assert all(torch.equal(kept[k], states[epoch - 1][k]) for k in kept)
    for epochs in (1, 2, 3):
        short = train(digits, TrainConfig(epochs=epochs, **knobs))
        assert [(r.train_loss, r.val_accuracy) for r in short.curve] == [
            (r.train_loss, r.val_accuracy) for r in long.curve[:epochs]]
        mine = short.model.state_dict()
        assert all(torch.equal(mine[k], states[epochs - 1][k]) for k in mine)
        # Its test figures are those of the prefix's weights.
        prefix = copy.deepcopy(short.model)
        prefix.load_state_dict(states[epochs - 1])
        again = evaluate_test(dataclasses.replace(long, model=prefix), digits)
        assert (again.test_accuracy, again.activation_density) == (
            short.test_accuracy, short.activation_density)
