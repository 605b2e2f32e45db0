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


def precision_recall_plot(ax: plt.Axes, curves: dict, points: dict | None = None,
                          title: str = "precision-recall") -> plt.Axes:
    """Precision against recall: `curves` maps a label to (recall, precision) arrays drawn as lines,
    `points` maps a label to one (recall, precision) operating point drawn as a marker.

    Introduced in notebooks/05_confusion_matrix_analysis.ipynb.
    """
    for label, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=label)
    markers = iter("osD^vP*X")
    for label, (recall, precision) in (points or {}).items():
        ax.plot([recall], [precision], next(markers), markersize=9, markeredgecolor="black",
                label=f"{label} ({recall:.3f}, {precision:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return ax


def lora_parameter_cost(ax: plt.Axes, layers: dict[str, tuple[int, int]], ranks,
                        title: str = "LoRA parameters against the full layer") -> plt.Axes:
    """Per layer (name -> (in, out)): LoRA's r·(in + out) against rank as a line, the full in·out as a
    dashed line, and a dot where they cross (the break-even rank). Log-log axes.

    Introduced in notebooks/02_lora_layer_math.ipynb.
    """
    ranks = np.asarray(list(ranks), dtype=float)
    colors = sns.color_palette(n_colors=len(layers))
    for k, ((name, (fan_in, fan_out)), color) in enumerate(zip(layers.items(), colors, strict=True)):
        ax.plot(ranks, ranks * (fan_in + fan_out), color=color, label=f"{name} LoRA ({fan_in}->{fan_out})")
        ax.axhline(fan_in * fan_out, color=color, linestyle="--", linewidth=1)
        even = fan_in * fan_out / (fan_in + fan_out)
        if ranks.min() <= even <= ranks.max():
            ax.plot([even], [fan_in * fan_out], "o", color=color)
            ax.annotate(f"r = {even:.1f}", (even, fan_in * fan_out), textcoords="offset points",
                        xytext=(-60, 6) if k % 2 else (5, -12), fontsize=8, color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank r")
    ax.set_ylabel("trainable parameters")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def rank_curves(ax: plt.Axes, ranks, curves: dict[str, list[float]], ylabel: str, title: str = "",
                logy: bool = False) -> plt.Axes:
    """One line per label of a quantity measured at each rank; log-scaled rank axis.

    Introduced in notebooks/02_lora_layer_math.ipynb.
    """
    for label, values in curves.items():
        ax.plot(list(ranks), values, "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ranks), [str(r) for r in ranks])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("rank r")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def singular_values(ax: plt.Axes, matrices: dict, top: int = 20, title: str = "singular values") -> plt.Axes:
    """The `top` largest singular values of each matrix (label -> 2-D tensor), log scale.

    Introduced in notebooks/02_lora_layer_math.ipynb.
    """
    for label, matrix in matrices.items():
        values = torch.linalg.svdvals(torch.as_tensor(matrix).detach().double())[:top]
        ax.plot(np.arange(1, len(values) + 1), values.numpy(), "o-", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("index (largest first)")
    ax.set_ylabel("singular value")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax
