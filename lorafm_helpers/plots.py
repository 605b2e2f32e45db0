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


def _marker_sizes(params) -> np.ndarray:
    """Marker areas growing with the square root of the trainable parameters: 0 -> 20, 10,000 -> 60,
    a million -> 420."""
    return 20 + 400 * np.sqrt(np.asarray(params, dtype=float) / 1e6)


def f1_vs_accuracy(ax: plt.Axes, table, hue: str = "group", annotate=(),
                   reference: str | None = None, title: str = "Dress F1 against accuracy") -> plt.Axes:
    """One marker per row of `table` (columns accuracy, dress_f1, name and `hue`), coloured by `hue`;
    the rows named in `annotate` (names, or a dict name -> label) are labelled, and the row named
    `reference` (the baseline) gets dotted guide lines.

    Introduced in notebooks/06_experiments.ipynb.
    """
    sns.scatterplot(data=table, x="accuracy", y="dress_f1", hue=hue, style=hue, s=70, ax=ax)
    _annotate(ax, table, "accuracy", "dress_f1", annotate)
    if reference is not None:
        row = table[table["name"] == reference].iloc[0]
        ax.axvline(row["accuracy"], color="grey", linestyle=":", linewidth=1)
        ax.axhline(row["dress_f1"], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("test accuracy")
    ax.set_ylabel("Dress F1 (test)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def recall_vs_precision(ax: plt.Axes, table, hue: str = "group", annotate=(), curve=None,
                        f1_levels=(0.88, 0.9, 0.92),
                        title: str = "Dress recall against precision") -> plt.Axes:
    """Dress precision (x) against recall (y), one marker per row of `table`, coloured by `hue`, its
    area growing with the trainable parameters; grey lines of equal F1 at `f1_levels`; the rows
    named in `annotate` (names, or a dict name -> label) are labelled; optionally `curve` =
    (precision, recall) arrays, e.g. the baseline under every logit bias.

    Introduced in notebooks/06_experiments.ipynb.
    """
    if curve is not None:
        ax.plot(curve[0], curve[1], color="black", linewidth=1, label="baseline + Dress logit bias b")
    xlim = (table["dress_precision"].min() - 0.02, min(table["dress_precision"].max() + 0.02, 1))
    ylim = (table["dress_recall"].min() - 0.02, min(table["dress_recall"].max() + 0.02, 1))
    p = np.linspace(max(xlim[0], 0.01), 1, 400)
    for level in f1_levels:  # F1 = 2pr / (p + r)  <=>  r = F1 p / (2p - F1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(2 * p > level, level * p / (2 * p - level), np.nan)
        ax.plot(p, np.where(r <= 1, r, np.nan), color="grey", linestyle="--", linewidth=0.8)
        inside = np.flatnonzero((r <= ylim[1]) & (r >= ylim[0]) & (p <= xlim[1]))
        if inside.size:
            ax.annotate(f"F1 {level:g}", (p[inside[0]], r[inside[0]]), fontsize=7, color="grey",
                        xytext=(3, -8), textcoords="offset points")
    groups = list(dict.fromkeys(table[hue]))
    for group, color in zip(groups, sns.color_palette(n_colors=len(groups)), strict=True):
        rows = table[table[hue] == group]
        ax.scatter(rows["dress_precision"], rows["dress_recall"], s=_marker_sizes(rows["trainable_params"]),
                   color=color, alpha=0.75, edgecolor="black", linewidth=0.5, label=group)
    _annotate(ax, table, "dress_precision", "dress_recall", annotate)
    handles, labels = ax.get_legend_handles_labels()
    for params in (0, 10_000, 1_000_000):
        handles.append(ax.scatter([], [], s=_marker_sizes([params]), color="white", edgecolor="black"))
        labels.append(f"{params:,} trainable")
    ax.legend(handles, labels, fontsize=7, loc="lower left")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("Dress precision (test)")
    ax.set_ylabel("Dress recall (test)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def _annotate(ax: plt.Axes, table, x: str, y: str, names) -> None:
    labels = names if isinstance(names, dict) else {name: name for name in names}
    for k, (name, label) in enumerate(labels.items()):
        row = table[table["name"] == name]
        if len(row):  # alternate above and below, so that neighbouring labels do not cover each other
            ax.annotate(label, (row[x].iloc[0], row[y].iloc[0]), fontsize=8,
                        xytext=(6, 6 if k % 2 else -12), textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})
