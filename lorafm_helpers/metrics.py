"""Per-class reports, confusion matrices, before/after deltas and the metrics JSON files.

Introduced in notebooks/01_baseline_training.ipynb.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .atomic import atomic_write
from .data import CLASSES


def _as_numpy(values) -> np.ndarray:
    return values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def confusion_matrix(y_true, y_pred, num_classes: int = len(CLASSES)) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    t, p = _as_numpy(y_true).astype(int), _as_numpy(y_pred).astype(int)
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_report(y_true, y_pred, classes=CLASSES) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, as a DataFrame indexed by class name.

    A class never predicted gets precision 0 (and F1 0), as scikit-learn's zero_division=0.
    Introduced in notebooks/01_baseline_training.ipynb.
    """
    cm = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(cm).astype(float)
    predicted, support = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support},
        index=pd.Index(classes, name="class"),
    )


def evaluate(y_true, y_pred, classes=CLASSES) -> dict:
    """Accuracy, per-class P/R/F1 and the confusion matrix as a JSON-ready dict.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    report = per_class_report(y_true, y_pred, classes)
    t, p = _as_numpy(y_true), _as_numpy(y_pred)
    return {
        "accuracy": float((t == p).mean()),
        "per_class": {c: {k: float(report.loc[c, k]) for k in ("precision", "recall", "f1")}
                      for c in classes},
        "confusion_matrix": confusion_matrix(t, p, len(classes)).tolist(),
    }


def report_from_metrics(metrics: dict) -> pd.DataFrame:
    """The per-class DataFrame back from a dict written by `evaluate`.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    frame = pd.DataFrame(metrics["per_class"]).T
    frame.index.name = "class"
    return frame


def report_delta(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Side-by-side precision/recall/F1 before and after, with the change of each.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    columns = ["precision", "recall", "f1"]
    delta = after[columns] - before[columns]
    return pd.concat({"before": before[columns], "after": after[columns], "change": delta}, axis=1)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite number {value} to metrics JSON.")
        return value
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics_json(path: str | os.PathLike, metrics: dict) -> Path:
    """Write `metrics` as indented JSON, atomically (temporary file, then rename).

    NumPy and torch numbers are converted; NaN and infinity are refused.
    Introduced in notebooks/01_baseline_training.ipynb.
    """
    path = Path(path)
    text = json.dumps(_jsonable(metrics), indent=2) + "\n"
    with atomic_write(path) as f:
        f.write(text)
    return path


def read_metrics_json(path: str | os.PathLike) -> dict:
    """Read a metrics file written by `write_metrics_json`, naming the chapter that writes it
    when it is missing.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist yet: run the chapter that writes it "
                                "(see the chapter table in README.md), e.g. `make tutorial`.")
    return json.loads(path.read_text())
