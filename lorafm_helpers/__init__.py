"""Helpers for the lorafm tutorial series: LoRA on a Fashion-MNIST MLP.

Each public name's docstring names the notebook that introduces it.
"""

from .data import (
    CLASSES,
    DRESS,
    DatasetCorruptError,
    DatasetNotFoundError,
    FashionMNIST,
    load_fashion_mnist,
    oversample,
)
from .errors import LorafmError, ParameterError, require
from .finetune import FinetuneResult, class_weights, f1_changes, finetune, finetune_lora
from .logit_bias import add_class_bias, bias_sweep, choose_dress_bias, class_margin
from .lora import (
    AdapterMismatchError,
    AdapterNotFoundError,
    LoRAConfigError,
    LoRALayer,
    LoRAStateError,
    apply_lora,
    base_weights_sha256,
    break_even_rank,
    load_adapter,
    lora_layers,
    save_adapter,
    trainable_parameters_report,
)
from .metrics import (
    confusion_matrix,
    evaluate,
    per_class_report,
    read_metrics_json,
    report_delta,
    report_from_metrics,
    write_metrics_json,
)
from .model import DeepNN, count_parameters
from .train import (
    BASELINE_RECIPE,
    accuracy,
    fit,
    load_checkpoint,
    load_or_train_baseline,
    pick_device,
    predict,
    save_checkpoint,
    set_seed,
)

__all__ = [
    "FinetuneResult",
    "add_class_bias",
    "bias_sweep",
    "choose_dress_bias",
    "class_margin",
    "class_weights",
    "f1_changes",
    "finetune",
    "finetune_lora",
    "AdapterMismatchError",
    "AdapterNotFoundError",
    "LoRAConfigError",
    "LoRALayer",
    "LoRAStateError",
    "apply_lora",
    "base_weights_sha256",
    "break_even_rank",
    "load_adapter",
    "lora_layers",
    "save_adapter",
    "trainable_parameters_report",
    "BASELINE_RECIPE",
    "CLASSES",
    "DRESS",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "DeepNN",
    "FashionMNIST",
    "LorafmError",
    "ParameterError",
    "accuracy",
    "confusion_matrix",
    "count_parameters",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_fashion_mnist",
    "load_or_train_baseline",
    "oversample",
    "per_class_report",
    "pick_device",
    "predict",
    "read_metrics_json",
    "report_delta",
    "report_from_metrics",
    "require",
    "save_checkpoint",
    "set_seed",
    "write_metrics_json",
]
