"""Loss functions of BaseNN and ModNN (kadupitiya2021 section II-B)."""

from __future__ import annotations

import torch
from torch import nn


class SoftLabelLoss(nn.Module):
    """ModNN loss L = (1/b) sum_i (Y_i - y_hat_i)^2 with soft labels Y_i ~ N(y_i, eps_i^2) (kadupitiya2021 eq. 5).

    The target is redrawn at every call (every batch) from the MD standard errors eps; the mean is taken over the
    batch and the outputs, as Keras' MSE. `generator` makes the draws reproducible.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator

    def soft_labels(self, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(y.shape, generator=self.generator, dtype=y.dtype, device=y.device)
        return y + eps * noise

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return torch.mean((self.soft_labels(y, eps) - y_hat) ** 2)


class MSELoss(nn.Module):
    """BaseNN loss L = (1/b) sum_i (y_i - y_hat_i)^2 (kadupitiya2021 eq. 3); eps is accepted and ignored."""

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        return torch.mean((y - y_hat) ** 2)


def make_loss(name: str, generator: torch.Generator | None = None) -> nn.Module:
    """'soft' (ModNN, SoftLabelLoss) or 'mse' (BaseNN)."""
    if name == "soft":
        return SoftLabelLoss(generator)
    if name == "mse":
        return MSELoss()
    raise ValueError(f"loss must be 'soft' (ModNN) or 'mse' (BaseNN), got {name!r}")
