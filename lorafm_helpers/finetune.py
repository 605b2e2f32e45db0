"""Fine-tuning toward one class: oversampling, a class-weighted loss, and the LoRA recipe.

`finetune` trains whatever in a model is trainable (LoRA matrices, the head, everything) on the
oversampled, class-weighted data and measures the result; `finetune_lora` is the chapter-04 recipe
(a copy of the baseline with LoRA applied, then `finetune`). Chapter 06 reuses both for its sweeps.
Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from .data import CLASSES, DRESS, FashionMNIST, oversample
from .errors import ParameterError
from .lora import DEFAULT_TARGETS, apply_lora
from .metrics import evaluate
from .model import count_parameters
from .train import fit, predict, set_seed


def class_weights(cls: int = DRESS, weight: float = 3.0, num_classes: int = len(CLASSES)) -> torch.Tensor:
    """Loss weights (num_classes,): 1.0 for every class, `weight` for class `cls`.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    if isinstance(cls, bool) or not isinstance(cls, numbers.Integral) or not 0 <= cls < num_classes:
        raise ParameterError(f"cls must be a class index 0..{num_classes - 1}, got {cls!r}.")
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) \
            or weight <= 0:
        raise ParameterError(f"weight must be a finite number > 0 (1.0 = no weighting), got {weight!r}.")
    weights = torch.ones(num_classes)
    weights[cls] = float(weight)
    return weights


def f1_changes(before: dict, after: dict, cls: int | None = DRESS) -> pd.Series:
    """F1 after minus F1 before for every class except `cls` (None: every class), from two
    `evaluate` dicts; the most negative entry is the worst forgetting.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    names = [c for i, c in enumerate(before["per_class"]) if cls is None or i != cls]
    return pd.Series({c: after["per_class"][c]["f1"] - before["per_class"][c]["f1"] for c in names},
                     name="F1 change")


@dataclass
class FinetuneResult:
    """What `finetune` returns: the trained model, its history, and its metrics.

    `val` and `test` are `evaluate` dicts (accuracy, per_class, confusion_matrix) on the validation
    and test splits; `recipe` holds every setting used.
    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """

    model: nn.Module
    history: list[dict]
    seconds: float
    trainable_params: int
    val: dict
    test: dict
    recipe: dict

    def summary(self, baseline: dict | None = None) -> dict:
        """One flat row: accuracy and the target class's precision/recall/F1 on test and validation,
        trainable parameters and seconds. Given the baseline's test `evaluate` dict, also the
        changes and the worst F1 change among the other classes.

        Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
        """
        cls = self.recipe["cls"]
        name = CLASSES[cls]
        row = {"class": name, "accuracy": self.test["accuracy"]}
        row.update({k: self.test["per_class"][name][k] for k in ("precision", "recall", "f1")})
        row["val_accuracy"] = self.val["accuracy"]
        row.update({f"val_{k}": self.val["per_class"][name][k] for k in ("precision", "recall", "f1")})
        row.update(trainable_params=self.trainable_params, seconds=self.seconds)
        if baseline is not None:
            row["accuracy_change"] = self.test["accuracy"] - baseline["accuracy"]
            row.update({f"{k}_change": self.test["per_class"][name][k] - baseline["per_class"][name][k]
                        for k in ("precision", "recall", "f1")})
            changes = f1_changes(baseline, self.test, cls)
            row.update(worst_other_f1_change=float(changes.min()), worst_other_class=changes.idxmin())
        return row


def finetune(
    model: nn.Module,
    data: FashionMNIST,
    *,
    cls: int = DRESS,
    oversample_factor: int = 3,
    class_weight: float = 3.0,
    epochs: int = 2,
    lr: float = 1e-3,
    batch_size: int = 128,
    cosine: bool = True,
    seed: int = 0,
    progress: bool = True,
    desc: str = "fine-tuning",
) -> FinetuneResult:
    """Train the trainable parameters of `model` in place toward class `cls`, then measure it.

    The training set repeats class `cls` `oversample_factor` times (1 = as is) and the loss weighs
    it `class_weight` times (1.0 = unweighted); `lorafm_helpers.train.fit` does the training
    (Adam, optional cosine schedule, batches reshuffled with `seed`). Freeze or wrap the model first:
    whatever has requires_grad trains.
    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    if isinstance(oversample_factor, bool) or not isinstance(oversample_factor, numbers.Integral) \
            or oversample_factor < 1:
        raise ParameterError(f"oversample_factor must be a whole number >= 1 (1 = no oversampling), "
                             f"got {oversample_factor!r}.")
    weights = class_weights(cls, class_weight)
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ParameterError(f"epochs must be a whole number >= 1, got {epochs!r}.")
    if not isinstance(lr, numbers.Real) or not 0 < lr <= 1:
        raise ParameterError(f"lr must be a number in (0, 1], got {lr!r}.")
    trainable = count_parameters(model, trainable_only=True)
    if trainable == 0:
        raise ParameterError("the model has no trainable parameters: wrap it with apply_lora(...) or set "
                             "requires_grad_(True) on the layers you want to train.")
    index = oversample(data.train_y, int(cls), int(oversample_factor))
    start = time.perf_counter()
    history = fit(model, data.train_x[index], data.train_y[index], epochs=int(epochs),
                  batch_size=batch_size, lr=float(lr), cosine=cosine,
                  class_weights=weights,
                  val=(data.val_x, data.val_y), seed=seed, progress=progress, desc=desc)
    seconds = time.perf_counter() - start
    recipe = {"cls": int(cls), "oversample_factor": int(oversample_factor),
              "class_weight": float(class_weight), "epochs": int(epochs), "lr": float(lr),
              "batch_size": int(batch_size), "cosine": bool(cosine), "seed": int(seed),
              "train_images": len(index)}
    return FinetuneResult(
        model=model, history=history, seconds=seconds, trainable_params=trainable,
        val=evaluate(data.val_y, predict(model, data.val_x).argmax(1)),
        test=evaluate(data.test_y, predict(model, data.test_x).argmax(1)),
        recipe=recipe,
    )


def finetune_lora(
    baseline: nn.Module,
    data: FashionMNIST,
    *,
    rank: int = 8,
    alpha: float = 16,
    targets: Iterable[str] | str = DEFAULT_TARGETS,
    dropout: float = 0.0,
    rslora: bool = False,
    seed: int = 0,
    desc: str = "LoRA fine-tuning",
    **training,
) -> FinetuneResult:
    """The Dress recipe: a deep copy of `baseline` with LoRA on `targets`, trained by `finetune`.

    `baseline` itself is never changed. The LoRA matrices are initialised with `seed`;
    `training` goes to `finetune` (cls, oversample_factor=3, class_weight=3.0, epochs=2, lr=1e-3,
    batch_size=128, cosine, progress). The defaults are chapter 04's.
    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    model = copy.deepcopy(baseline)
    set_seed(seed)
    apply_lora(model, targets, rank=rank, alpha=alpha, dropout=dropout, rslora=rslora)
    result = finetune(model, data, seed=seed, desc=desc, **training)
    names = [targets] if isinstance(targets, str) else list(targets)
    result.recipe = {"method": "lora", "rank": rank, "alpha": alpha, "targets": names,
                     "dropout": dropout, "rslora": rslora, **result.recipe}
    return result


def finetune_layers(
    baseline: nn.Module,
    data: FashionMNIST,
    layers: Iterable[str] | str,
    *,
    desc: str = "fine-tuning",
    **training,
) -> FinetuneResult:
    """Ordinary fine-tuning, no LoRA: a deep copy of `baseline` with only the named layers unfrozen
    (["linear3"]: head-only, 10,010 parameters; every layer: full fine-tuning), trained by `finetune`.

    `baseline` itself is never changed; `training` goes to `finetune` (cls, oversample_factor,
    class_weight, epochs, lr, ...), with the same defaults as `finetune_lora`.
    Introduced in notebooks/06_experiments.ipynb.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = dict(baseline.named_modules())
    unknown = [n for n in names if not isinstance(n, str) or not n or n not in modules]
    if not names or unknown:
        choices = [n for n, m in modules.items() if n and next(m.parameters(), None) is not None]
        raise ParameterError(f"layers must name layers of the model, one or more of {choices}; "
                             f"got {layers!r}.")
    model = copy.deepcopy(baseline).requires_grad_(False)
    for name in names:
        model.get_submodule(name).requires_grad_(True)
    result = finetune(model, data, desc=desc, **training)
    result.recipe = {"method": "fine-tune", "layers": names, **result.recipe}
    return result
