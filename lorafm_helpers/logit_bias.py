"""The zero-parameter baseline: add a constant to one class's logit, chosen on validation.

Oversampling a class and weighting its loss both tell a model "this class is more common than it
looks"; the simplest way to say the same after training is to add a constant to that class's logit.
Every fine-tuning result in the series is compared with this.
Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
"""

from __future__ import annotations

import math
import numbers

import pandas as pd
import torch

from .data import CLASSES, DRESS
from .errors import ParameterError
from .metrics import per_class_report


def add_class_bias(logits: torch.Tensor, bias: float, cls: int = DRESS) -> torch.Tensor:
    """A copy of `logits` (N, C) with `bias` added to column `cls`.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    _check_logits(logits, cls)
    shifted = logits.clone()
    shifted[:, cls] += bias
    return shifted


def _check_logits(logits: torch.Tensor, cls: int, labels: torch.Tensor | None = None) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ParameterError(f"logits must be a tensor of shape (N, classes >= 2), got {shape}; "
                             "pass predict(model, x).")
    if isinstance(cls, bool) or not isinstance(cls, numbers.Integral) or not 0 <= cls < logits.shape[1]:
        raise ParameterError(f"cls must be a class index 0..{logits.shape[1] - 1}, got {cls!r}.")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(logits)):
        raise ParameterError(f"labels must be a 1-D tensor with one label per row of logits "
                             f"({len(logits)}), got shape {tuple(labels.shape)}.")


def class_margin(logits: torch.Tensor, cls: int = DRESS) -> torch.Tensor:
    """Per row, logit of `cls` minus the largest other logit: `cls` wins when margin + bias > 0.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    _check_logits(logits, cls)
    others = torch.cat([logits[:, :cls], logits[:, cls + 1:]], dim=1)
    return (logits[:, cls] - others.max(1).values).float()


def choose_dress_bias(logits_val: torch.Tensor, y_val: torch.Tensor, target_recall: float | None = None,
                      cls: int = DRESS) -> float:
    """The constant to add to the `cls` logit, chosen on the validation split only.

    With `target_recall`: a bias that reaches at least that validation recall of `cls` while turning
    as few other rows into `cls` predictions as possible (negative if the model already exceeds
    the target). Without: the bias that maximises the validation F1 of `cls`. The bias lies halfway
    between two neighbouring decision points, so tiny changes in the scores do not flip the result.
    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    _check_logits(logits_val, cls, y_val)
    if target_recall is not None and (isinstance(target_recall, bool)
                                      or not isinstance(target_recall, numbers.Real)
                                      or not 0 < target_recall <= 1):
        raise ParameterError(f"target_recall must be a number in (0, 1] or None (maximise F1), "
                             f"got {target_recall!r}.")
    positive = y_val == cls
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ParameterError(f"the validation labels contain no {CLASSES[cls] if cls < len(CLASSES) else cls}"
                             " images; a bias for it cannot be chosen.")
    # A row is predicted `cls` once bias > -margin. Sort by margin, highest first: taking the first
    # k rows as `cls` predictions corresponds to a bias between -margin[k-1] and -margin[k].
    margin, order = class_margin(logits_val, cls).sort(descending=True)
    is_pos = positive[order].double()
    tp = is_pos.cumsum(0)
    fp = (1 - is_pos).cumsum(0)
    if target_recall is None:
        f1 = 2 * tp / (tp + fp + n_pos)
        k = int(f1.argmax()) + 1  # first (smallest-bias) maximum
    else:
        needed = math.ceil(round(target_recall * n_pos, 9))
        k = int(torch.nonzero(tp >= needed)[0, 0]) + 1
    low = -float(margin[k - 1])  # the bias must exceed this for the k-th row to become `cls`
    if k == len(margin):
        return low + 1.0
    high = -float(margin[k])  # ... and must not exceed this, or the next row joins too
    return (low + high) / 2 if high > low else low + 1e-6


def bias_sweep(logits: torch.Tensor, labels: torch.Tensor, biases, cls: int = DRESS) -> pd.DataFrame:
    """Precision, recall and F1 of `cls` and overall accuracy for each bias added to its logit.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    _check_logits(logits, cls, labels)
    rows = []
    for bias in biases:
        pred = add_class_bias(logits, float(bias), cls).argmax(1)
        report = per_class_report(labels, pred, classes=range(logits.shape[1]))
        rows.append({"bias": float(bias), **report.loc[cls, ["precision", "recall", "f1"]].to_dict(),
                     "accuracy": float((pred == labels).float().mean())})
    return pd.DataFrame(rows)
