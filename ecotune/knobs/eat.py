"""EAT: energy-aware training by a sparsity penalty on hidden activations.

Lazzaro et al., ICIAP 2023 (arXiv 2307.00368; docs/knobs.md). The training loss becomes

    CE(x, y; w) + lambda * mean_k [ sum_j a_kj^2 / (a_kj^2 + sigma) / numel(a_k) ]

where ``a_k`` is the output activation of hidden layer k: the authors' code normalises
each layer's l0 approximation by its element count and averages over the hooked layers,
so the penalty lies in [0, 1] whatever the model's size. The sign is +lambda: the
penalty lowers activation density (the same term with -lambda is sponge poisoning).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["l0hat", "EATPenalty", "hidden_activation_modules", "DEFAULT_SIGMA"]

#: sigma in the authors' code.
DEFAULT_SIGMA = 1e-4


def l0hat(x: torch.Tensor, sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """Differentiable stand-in for the l0 norm: ``sum(x^2 / (x^2 + sigma))``.

    Example:
        >>> round(float(l0hat(torch.tensor([0.0, 1.0, -1.0]), sigma=1e-8)), 4)
        2.0
    """
    # In float32 whatever autocast chose: a float16 sum over a large activation tensor
    # overflows to inf (its largest value is 65504), and sigma = 1e-4 is near its floor.
    squared = x.float().pow(2)
    return (squared / (squared + sigma)).sum()


def hidden_activation_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are the hidden activations: every ReLU-family module.

    The last layer (logits) has no activation module, so it is not penalised.
    """
    kinds = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU)
    return [m for m in model.modules() if isinstance(m, kinds)]


class EATPenalty:
    """Forward hooks that collect hidden activations and turn them into the EAT penalty.

    With ``lam == 0`` no hook is registered and :meth:`penalty` returns 0: the knob then
    adds no work.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with EATPenalty(net, lam=1.0, sigma=1e-4) as eat:
        ...     logits = net(torch.randn(3, 4))
        ...     0.0 <= float(eat.penalty().detach()) <= 1.0
        True
    """

    def __init__(self, model: nn.Module, lam: float, sigma: float = DEFAULT_SIGMA) -> None:
        if lam < 0:
            raise ValueError(f"eat_lambda must be >= 0 (got {lam}); a negative penalty "
                             "raises energy (sponge poisoning)")
        if sigma <= 0:
            raise ValueError(f"eat_sigma must be > 0 (got {sigma})")
        self.model = model
        self.lam = lam
        self.sigma = sigma
        self._terms: list[torch.Tensor] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> EATPenalty:
        if self.lam > 0:
            modules = hidden_activation_modules(self.model)
            if not modules:
                raise ValueError("EAT needs hidden activations (ReLU-family modules); "
                                 f"{type(self.model).__name__} has none")
            self._handles = [m.register_forward_hook(self._hook) for m in modules]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._terms = []

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # Only while training: evaluation passes should not hold on to graphs.
        if module.training:
            self._terms.append(l0hat(output, self.sigma) / output.numel())

    @property
    def active(self) -> bool:
        """Whether the penalty does anything (``lambda > 0``)."""
        return self.lam > 0

    def penalty(self) -> torch.Tensor:
        """``lambda`` x the mean normalised l0hat over the hooked layers since the last
        call (then forgets them: call once per batch)."""
        if not self._terms:
            return torch.zeros((), device=next(self.model.parameters()).device)
        value = self.lam * torch.stack(self._terms).mean()
        self._terms = []
        return value
