"""The MLP that the whole series adapts.

Introduced in notebooks/01_baseline_training.ipynb.
"""

from __future__ import annotations

import torch
from torch import nn


class DeepNN(nn.Module):
    """784 -> 500 -> 1000 -> 10 MLP with LeakyReLU; 903,510 parameters.

    The attribute names (`linear1`, `relu`, `linear2`, `linear3`) are the original write-up's,
    so LoRA targets and checkpoint keys read the same everywhere.
    Introduced in notebooks/01_baseline_training.ipynb.
    """

    def __init__(self, in_features: int = 784, hidden1: int = 500, hidden2: int = 1000,
                 num_classes: int = 10) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_features, hidden1)
        self.relu = nn.LeakyReLU()
        self.linear2 = nn.Linear(hidden1, hidden2)
        self.linear3 = nn.Linear(hidden2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        x = self.relu(self.linear1(x))
        x = self.relu(self.linear2(x))
        return self.linear3(x)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with requires_grad when `trainable_only`).

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
