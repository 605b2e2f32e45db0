"""Figures for the chapters. Every function draws on the `ax` it is given and returns it.

Introduced in notebooks/01_baseline_training.ipynb.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from .data import CLASSES, unnormalise


def image_grid(ax: plt.Axes, x: torch.Tensor, labels, ncols: int = 10,
               titles: list[str] | None = None) -> plt.Axes:
    """Normalised images (N, 784) as one mosaic with a caption under each tile.

    `labels` are class indices (captioned with class names) unless `titles` are given.
    Introduced in notebooks/01_baseline_training.ipynb.
    """
    images = unnormalise(x).numpy()
    n = len(images)
    nrows = -(-n // ncols)
    pad = 10  # rows of white space under each tile for its caption
    mosaic = np.ones((nrows * (28 + pad), ncols * 28))
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        mosaic[r * (28 + pad) : r * (28 + pad) + 28, c * 28 : (c + 1) * 28] = 1 - image
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
    captions = titles or [CLASSES[int(label)] for label in labels]
    for i, caption in enumerate(captions):
        r, c = divmod(i, ncols)
        ax.text(c * 28 + 14, r * (28 + pad) + 28 + pad / 2, caption, ha="center", va="center",
                fontsize=7)
    ax.set_axis_off()
    return ax


def training_curves(ax: plt.Axes, history: list[dict], title: str = "training") -> plt.Axes:
    """Training loss (left axis) and validation accuracy (right axis) per epoch.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    ax.set_title(title)
    if history and history[0].get("val_accuracy") is not None:
        right = ax.twinx()
        right.plot(epochs, [h["val_accuracy"] for h in history], "s-", color="tab:orange")
        right.set_ylabel("validation accuracy", color="tab:orange")
    return ax


def confusion_heatmap(ax: plt.Axes, cm, normalize: bool = False, title: str = "",
                      classes=CLASSES) -> plt.Axes:
    """Confusion matrix (rows true, columns predicted); `normalize` shows each row's shares.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / cm.sum(1, keepdims=True).clip(min=1)
    sns.heatmap(cm, ax=ax, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues",
                xticklabels=classes, yticklabels=classes, cbar=False, annot_kws={"fontsize": 7})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax


def delta_heatmap(ax: plt.Axes, delta, title: str = "after - before", fmt: str = ".0f",
                  classes=CLASSES) -> plt.Axes:
    """A signed matrix (e.g. confusion after minus before) on a diverging scale centred at 0.

    Introduced in notebooks/05_confusion_matrix_analysis.ipynb.
    """
    delta = np.asarray(delta, dtype=float)
    limit = max(np.abs(delta).max(), 1e-9)
    sns.heatmap(delta, ax=ax, annot=True, fmt=fmt, cmap="RdBu_r", vmin=-limit, vmax=limit,
                center=0, xticklabels=classes, yticklabels=classes, cbar=True,
                annot_kws={"fontsize": 7})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax
