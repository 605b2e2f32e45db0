"""Experiment rows: one flat record per configuration, the same fields on every split, and the
rule that picks a recommendation on the validation split.

Introduced in notebooks/06_experiments.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable

from .data import CLASSES, DRESS
from .errors import ParameterError
from .finetune import FinetuneResult, f1_changes

# The fields of every row of experiments.json, in order.
EXPERIMENT_FIELDS = ("name", "method", "rank", "alpha", "scaling", "dress_weight", "layers",
                     "trainable_params", "accuracy", "dress_precision", "dress_recall", "dress_f1",
                     "worst_other_f1_drop", "seconds")


def experiment_row(name: str, method: str, evaluation: dict, reference: dict, *, rank: int | None = None,
                   alpha: float | None = None, scaling: str | None = None, dress_weight: float | None = None,
                   layers: Iterable[str] = (), trainable_params: int = 0, seconds: float = 0.0,
                   cls: int = DRESS) -> dict:
    """One row with exactly `EXPERIMENT_FIELDS`, from an `evaluate` dict and the baseline's on the
    same split (`reference`).

    `worst_other_f1_drop` is the largest F1 loss among the other classes, in F1 units (0.01 = one
    point; negative when every other class improved). Settings that do not apply stay None.
    Introduced in notebooks/06_experiments.ipynb.
    """
    target = evaluation["per_class"][CLASSES[cls]]
    return {
        "name": name, "method": method, "rank": rank, "alpha": alpha, "scaling": scaling,
        "dress_weight": dress_weight, "layers": list(layers), "trainable_params": int(trainable_params),
        "accuracy": evaluation["accuracy"], "dress_precision": target["precision"],
        "dress_recall": target["recall"], "dress_f1": target["f1"],
        "worst_other_f1_drop": 0.0 - float(f1_changes(reference, evaluation, cls).min()),  # no -0.0
        "seconds": float(seconds),
    }


def result_rows(name: str, method: str, result: FinetuneResult, baseline_val: dict,
                baseline_test: dict) -> tuple[dict, dict]:
    """The (validation, test) rows of a `finetune_lora` / `finetune_layers` result; the settings
    come from its recipe (scaling "alpha/r", or "alpha/sqrt(r)" for rsLoRA).

    Introduced in notebooks/06_experiments.ipynb.
    """
    recipe = result.recipe
    lora = recipe.get("method") == "lora"
    settings = {
        "rank": recipe["rank"] if lora else None,
        "alpha": recipe["alpha"] if lora else None,
        "scaling": ("alpha/sqrt(r)" if recipe["rslora"] else "alpha/r") if lora else None,
        "dress_weight": recipe["class_weight"],
        "layers": recipe["targets"] if lora else recipe["layers"],
        "trainable_params": result.trainable_params, "seconds": result.seconds, "cls": recipe["cls"],
    }
    return (experiment_row(name, method, result.val, baseline_val, **settings),
            experiment_row(name, method, result.test, baseline_test, **settings))


def recommend(val_rows: list[dict], *, max_accuracy_drop: float = 0.005, f1_tolerance: float = 0.0,
              methods: Iterable[str] | None = None) -> dict:
    """The row to recommend, decided on validation rows only.

    Candidates (of `methods`, if given) must keep validation accuracy within `max_accuracy_drop`
    of the row whose method is "baseline". Among those within `f1_tolerance` of the best
    validation Dress F1, the one with the fewest trainable parameters wins (then the higher F1):
    a difference smaller than the noise should not buy parameters.
    Introduced in notebooks/06_experiments.ipynb.
    """
    baselines = [r for r in val_rows if r["method"] == "baseline"]
    if len(baselines) != 1:
        raise ParameterError(f"val_rows must hold exactly one row with method 'baseline', "
                             f"found {len(baselines)}.")
    wanted = None if methods is None else set(methods)
    floor = baselines[0]["accuracy"] - max_accuracy_drop
    candidates = [r for r in val_rows
                  if (wanted is None or r["method"] in wanted) and r["accuracy"] >= floor]
    if not candidates:
        raise ParameterError(f"no row of methods {sorted(wanted or [])} keeps validation accuracy above "
                             f"{floor:.4f}; raise max_accuracy_drop or add rows.")
    best = max(r["dress_f1"] for r in candidates)
    close = [r for r in candidates if r["dress_f1"] >= best - f1_tolerance]
    return min(close, key=lambda r: (r["trainable_params"], -r["dress_f1"]))
