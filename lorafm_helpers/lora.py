"""LoRA: a frozen linear layer plus a trainable low-rank update, W + (alpha/r)·B·A.

The layer, wrapping a model, counting what trains, and adapter files that peft can load.
Introduced in notebooks/02_lora_layer_math.ipynb.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .atomic import atomic_write
from .errors import LorafmError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
BASE_SHA256_KEY = "lorafm_base_sha256"  # safetensors metadata entry; peft ignores it
PEFT_PREFIX = "base_model.model."  # peft's prefix for adapter keys of a custom model
DEFAULT_TARGETS = ("linear1", "linear2", "linear3")


class LoRAConfigError(LorafmError, ValueError):
    """An invalid LoRA setting: rank, alpha, dropout or target layers.

    Introduced in notebooks/02_lora_layer_math.ipynb.
    """


class LoRAStateError(LorafmError, RuntimeError):
    """An operation that does not fit the layer's current state (merging twice, ...).

    Introduced in notebooks/02_lora_layer_math.ipynb.
    """


class AdapterMismatchError(LorafmError, ValueError):
    """An adapter file that does not fit the model: other base, other layers, other rank.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """


class AdapterNotFoundError(LorafmError, FileNotFoundError):
    """A folder without the adapter files that `save_adapter` writes.

    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """


def _check_rank(rank: object) -> None:
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
        raise LoRAConfigError(f"rank must be a positive integer, got {rank!r}; try rank=8.")


def _check_alpha_dropout(alpha: object, dropout: object) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) \
            or alpha <= 0:
        raise LoRAConfigError(f"alpha must be a finite number > 0, got {alpha!r}; try alpha=2*rank.")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise LoRAConfigError(f"dropout must be a number in [0, 1), got {dropout!r}; try dropout=0.0.")


class LoRALayer(nn.Module):
    """A frozen `nn.Linear` plus a low-rank update: y = W x + b + scaling · B A dropout(x).

    A is (rank, in) with kaiming-uniform init (a=sqrt(5)), B is (out, rank) zeros, so the update is
    zero at step 0. scaling = alpha / rank, or alpha / sqrt(rank) with `rslora=True`.
    The wrapped layer's parameters are frozen (requires_grad=False).
    Introduced in notebooks/02_lora_layer_math.ipynb.
    """

    def __init__(self, original_layer: nn.Linear, rank: int, alpha: float, dropout: float = 0.0,
                 rslora: bool = False) -> None:
        super().__init__()
        if isinstance(original_layer, LoRALayer):
            raise LoRAConfigError("this layer is already a LoRALayer; wrap each nn.Linear only once.")
        if not isinstance(original_layer, nn.Linear):
            raise LoRAConfigError(
                f"LoRALayer wraps an nn.Linear, got {type(original_layer).__name__}.")
        in_features, out_features = original_layer.in_features, original_layer.out_features
        _check_rank(rank)
        _check_alpha_dropout(alpha, dropout)
        if rank > min(in_features, out_features):
            warnings.warn(
                f"rank {rank} is above min(in, out) = {min(in_features, out_features)} for this "
                f"{in_features} -> {out_features} layer: B·A cannot have a rank above "
                f"{min(in_features, out_features)}, so the extra parameters add no expressiveness.",
                UserWarning, stacklevel=2)
        self.original_layer = original_layer.requires_grad_(False)
        self.rank, self.alpha, self.rslora, self.dropout_p = int(rank), float(alpha), bool(rslora), \
            float(dropout)
        self.scaling = self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)
        weight = original_layer.weight
        self.lora_A = nn.Parameter(torch.empty(self.rank, in_features, dtype=weight.dtype,
                                               device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(out_features, self.rank, dtype=weight.dtype,
                                               device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(self.dropout_p) if self.dropout_p > 0 else nn.Identity()
        # While merged, the exact pre-merge weight, so that unmerge restores it bit for bit.
        self.register_buffer("_unmerged_weight", None, persistent=False)

    @property
    def merged(self) -> bool:
        """True while B·A is folded into the wrapped layer's weight."""
        return self._unmerged_weight is not None

    @property
    def in_features(self) -> int:
        return self.original_layer.in_features

    @property
    def out_features(self) -> int:
        return self.original_layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.original_layer(x)
        if self.merged:
            return result
        # Two thin matmuls, x A^T then B^T: B·A (out x in) is never built.
        return result + F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The update scaling · B A, shaped like the wrapped weight (out, in); rank <= self.rank.

        Introduced in notebooks/02_lora_layer_math.ipynb.
        """
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the weight (W <- W + scaling·B A): the forward becomes one plain linear.

        Introduced in notebooks/02_lora_layer_math.ipynb.
        """
        if self.merged:
            raise LoRAStateError("this LoRA layer is already merged; call unmerge() before merging again.")
        weight = self.original_layer.weight
        self._unmerged_weight = weight.detach().clone()
        weight += self.delta_weight().to(weight.dtype)

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo `merge`: restore the exact weight from before the merge (not W + ΔW − ΔW, which rounds).

        Introduced in notebooks/02_lora_layer_math.ipynb.
        """
        if not self.merged:
            raise LoRAStateError("this LoRA layer is not merged; there is nothing to unmerge.")
        self.original_layer.weight.copy_(self._unmerged_weight)
        self._unmerged_weight = None

    def extra_repr(self) -> str:
        return (f"rank={self.rank}, alpha={self.alpha:g}, scaling={self.scaling:g}, "
                f"rslora={self.rslora}, merged={self.merged}")


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    """Every LoRALayer of `model` by its module name ("linear1", ...).

    Introduced in notebooks/03_freezing_and_parameter_counts.ipynb.
    """
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALayer)}


def _linear_names(model: nn.Module) -> list[str]:
    wrapped = [f"{name}.original_layer" for name in lora_layers(model)]
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Linear | LoRALayer) and name and name not in wrapped]


def apply_lora(model: nn.Module, targets: Iterable[str] | str = DEFAULT_TARGETS, rank: int = 8,
               alpha: float = 16, dropout: float = 0.0, rslora: bool = False) -> nn.Module:
    """Wrap the named `nn.Linear` layers of `model` in place in LoRALayers and freeze everything else.

    Every check runs before anything changes: on error the model is untouched. A rank above a
    layer's min(in, out) is allowed, as in peft, with a warning: it adds parameters, not expressiveness.
    Returns `model`, whose only trainable parameters are now the A and B matrices.
    Introduced in notebooks/03_freezing_and_parameter_counts.ipynb.
    """
    names = [targets] if isinstance(targets, str) else list(targets)
    if not names:
        raise LoRAConfigError(f"targets is empty; name at least one linear layer: {_linear_names(model)}.")
    if len(set(names)) != len(names):
        raise LoRAConfigError(f"targets lists a layer twice: {names}.")
    existing = lora_layers(model)
    if existing:
        raise LoRAConfigError(
            f"this model already has LoRA layers ({', '.join(existing)}); apply_lora once, with every "
            "target, to a fresh copy of the base model.")
    _check_rank(rank)
    _check_alpha_dropout(alpha, dropout)
    modules = dict(model.named_modules())
    for name in names:
        if not isinstance(name, str) or not name or name not in modules:
            raise LoRAConfigError(
                f"no layer named {name!r} in {type(model).__name__}; its linear layers are "
                f"{_linear_names(model)}.")
        layer = modules[name]
        if not isinstance(layer, nn.Linear):
            raise LoRAConfigError(
                f"{name!r} is a {type(layer).__name__}, not an nn.Linear; LoRA here wraps linear layers "
                f"only: {_linear_names(model)}.")
    model.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALayer(modules[name], rank, alpha, dropout, rslora))
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its layer and put the plain `nn.Linear` back, in place.

    Afterwards `model` is an ordinary model again (for DeepNN: the same state-dict keys as
    baseline.pt), so it runs, saves and loads without this package and costs exactly what the
    base costs. The A and B matrices are dropped: save the adapter first if you need it.
    Introduced in notebooks/07_merge_and_share.ipynb.
    """
    wrapped = lora_layers(model)
    if not wrapped:
        raise LoRAConfigError("the model has no LoRA layers; there is nothing to merge.")
    for name, layer in wrapped.items():
        if not layer.merged:
            layer.merge()
        layer._unmerged_weight = None  # the fold is now permanent
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.original_layer)
    return model


def break_even_rank(in_features: int, out_features: int) -> float:
    """The rank at which LoRA's r·(in + out) parameters equal the layer's in·out weights.

    Introduced in notebooks/03_freezing_and_parameter_counts.ipynb.
    """
    return in_features * out_features / (in_features + out_features)


def trainable_parameters_report(model: nn.Module) -> tuple[pd.DataFrame, str]:
    """A per-linear-layer table and peft's one-line summary of trainable parameters.

    Columns: layer, in, out, rank (0 = not wrapped), frozen params, trainable params, LoRA params,
    break-even rank. Warns for each LoRA layer whose rank reaches its break-even rank, where training
    the layer's weights outright would take fewer parameters.
    Introduced in notebooks/03_freezing_and_parameter_counts.ipynb.
    """
    wrapped = lora_layers(model)
    rows = []
    for name in _linear_names(model):
        module = model.get_submodule(name)
        linear = module.original_layer if isinstance(module, LoRALayer) else module
        params = list(module.parameters())
        rank = wrapped[name].rank if name in wrapped else 0
        rows.append({
            "layer": name, "in": linear.in_features, "out": linear.out_features, "rank": rank,
            "frozen params": sum(p.numel() for p in params if not p.requires_grad),
            "trainable params": sum(p.numel() for p in params if p.requires_grad),
            "LoRA params": rank * (linear.in_features + linear.out_features),
            "break-even rank": break_even_rank(linear.in_features, linear.out_features),
        })
        if rank and rank >= rows[-1]["break-even rank"]:
            warnings.warn(
                f"{name}: rank {rank} reaches its break-even rank {rows[-1]['break-even rank']:.1f} "
                f"(in*out/(in+out)); its {rows[-1]['LoRA params']:,} LoRA parameters are more than its "
                f"{linear.in_features * linear.out_features:,} weights, so training the layer outright "
                "would be cheaper.", UserWarning, stacklevel=2)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    summary = (f"trainable params: {trainable:,d} || all params: {total:,d} || "
               f"trainable%: {100 * trainable / total:.4f}")
    return pd.DataFrame(rows), summary


def _base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's tensors under the base model's own names, with LoRA taken out."""
    wrapped = lora_layers(model)
    state = {}
    for key, tensor in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in wrapped and leaf in ("lora_A", "lora_B"):
            continue
        parts = key.split(".")
        kept = [p for i, p in enumerate(parts)
                if not (p == "original_layer" and ".".join(parts[:i]) in wrapped)]
        state[".".join(kept)] = tensor
    for name, layer in wrapped.items():
        if layer.merged:
            state[f"{name}.weight" if name else "weight"] = layer._unmerged_weight
    return state


def base_weights_sha256(model: nn.Module) -> str:
    """SHA-256 of the base model's weights (names, dtypes, shapes, bytes), LoRA excluded.

    The same for the plain base and for it wrapped with LoRA, merged or not.
    Introduced in notebooks/03_freezing_and_parameter_counts.ipynb.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(_base_state(model).items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _uniform_config(model: nn.Module) -> dict:
    wrapped = lora_layers(model)
    if not wrapped:
        raise LoRAConfigError("the model has no LoRA layers; call apply_lora(model, ...) first.")
    settings = {(m.rank, m.alpha, m.dropout_p, m.rslora) for m in wrapped.values()}
    if len(settings) > 1:
        raise LoRAConfigError(f"the LoRA layers differ in (rank, alpha, dropout, rslora): "
                              f"{sorted(settings)}; an adapter file holds one setting for every layer.")
    rank, alpha, dropout, rslora = settings.pop()
    return {
        "peft_type": "LORA", "task_type": None, "base_model_name_or_path": None,
        "r": rank, "lora_alpha": alpha, "lora_dropout": dropout, "use_rslora": rslora,
        "target_modules": sorted(wrapped), "bias": "none", "fan_in_fan_out": False,
        "init_lora_weights": True, "inference_mode": True,
    }


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write only the A and B matrices to folder `path`, in peft's format, and return the folder.

    `adapter_model.safetensors` holds `base_model.model.<layer>.lora_A.weight` / `lora_B.weight` and
    the base weights' SHA-256 in its metadata; `adapter_config.json` is a peft LoraConfig, so
    `peft.PeftModel.from_pretrained(base, path)` loads it too. Files are written atomically.
    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    config = _uniform_config(model)
    path = Path(path)
    tensors = {}
    for name, layer in lora_layers(model).items():
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = layer.lora_A.detach().cpu().contiguous()
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = layer.lora_B.detach().cpu().contiguous()
    metadata = {"format": "pt", BASE_SHA256_KEY: base_weights_sha256(model)}
    with atomic_write(path / ADAPTER_WEIGHTS, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata=metadata))
    with atomic_write(path / ADAPTER_CONFIG, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return path


def _read_adapter(path: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, str]]:
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (path / name).is_file():
            raise AdapterNotFoundError(f"no {name} in {path}; point load_adapter at a folder written by "
                                       "save_adapter (or peft's save_pretrained).")
    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text())
    except json.JSONDecodeError as err:
        raise AdapterMismatchError(f"{path / ADAPTER_CONFIG} is not valid JSON ({err}); save the "
                                   "adapter again.") from None
    try:
        with safe_open(path / ADAPTER_WEIGHTS, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise AdapterMismatchError(f"{path / ADAPTER_WEIGHTS} is not a readable safetensors file ({err}); "
                                   "save the adapter again.") from None
    return config, tensors, metadata


def _targets_from_config(config: dict, path: Path) -> list[str]:
    if config.get("peft_type") != "LORA":
        raise AdapterMismatchError(f"{path} holds a {config.get('peft_type')!r} adapter, not a LoRA one.")
    if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("bias", "none") != "none":
        raise AdapterMismatchError(f"{path} uses per-layer ranks/alphas or trained biases, which "
                                   "load_adapter does not support; load it with peft instead.")
    targets = config.get("target_modules")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise AdapterMismatchError(f"{path}: target_modules must be a list of layer names, got {targets!r}.")
    return sorted(targets)


def load_adapter(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an adapter folder written by `save_adapter` into `model` and return the model.

    `model` is the base (LoRA is applied from the adapter's config) or the base already wrapped with
    the same targets, rank and alpha. Strict: a different base (SHA-256), missing or unexpected keys,
    or a shape (rank) mismatch is refused, naming the problem, before the model changes.
    Introduced in notebooks/04_oversampling_and_weighted_loss.ipynb.
    """
    path = Path(path)
    config, tensors, metadata = _read_adapter(path)
    targets = _targets_from_config(config, path)
    recorded = metadata.get(BASE_SHA256_KEY)
    if recorded is None:
        warnings.warn(f"{path} records no base-weight SHA-256 (not written by save_adapter); "
                      "cannot check that it was trained on this base.", UserWarning, stacklevel=2)
    elif recorded != (actual := base_weights_sha256(model)):
        raise AdapterMismatchError(
            f"{path} was trained on other base weights (SHA-256 {recorded[:12]}...) than this model's "
            f"({actual[:12]}...); load the base it was trained on (e.g. the chapter-01 baseline.pt).")
    expected = {f"{PEFT_PREFIX}{t}.lora_{ab}.weight" for t in targets for ab in "AB"}
    problems = [f"missing {k}" for k in sorted(expected - tensors.keys())]
    problems += [f"unexpected {k}" for k in sorted(tensors.keys() - expected)]
    if problems:
        raise AdapterMismatchError(f"{path} does not match its own config: " + "; ".join(problems))
    rank = config.get("r")
    wrapped = lora_layers(model)
    if wrapped:
        current = _uniform_config(model)
        found = {"targets": current["target_modules"], "r": current["r"],
                 "lora_alpha": current["lora_alpha"], "use_rslora": current["use_rslora"]}
        wanted = {"targets": targets, "r": rank, "lora_alpha": config.get("lora_alpha"),
                  "use_rslora": config.get("use_rslora", False)}
        diffs = [f"{k}: adapter {wanted[k]!r} vs model {found[k]!r}" for k in found if found[k] != wanted[k]]
        if diffs:
            raise AdapterMismatchError(f"{path} does not fit this model's LoRA layers: " + "; ".join(diffs)
                                       + ". Pass the plain base model and load_adapter applies LoRA itself.")
        if any(m.merged for m in wrapped.values()):
            raise LoRAStateError("some LoRA layers are merged; unmerge them before loading an adapter.")
    modules = dict(model.named_modules())
    for t in targets:
        module = modules.get(t)
        linear = module.original_layer if isinstance(module, LoRALayer) else module
        if not isinstance(linear, nn.Linear):
            raise AdapterMismatchError(f"{path} targets {t!r}, which is not a linear layer of this model "
                                       f"({_linear_names(model)}).")
        for ab, shape in (("A", (rank, linear.in_features)), ("B", (linear.out_features, rank))):
            got = tuple(tensors[f"{PEFT_PREFIX}{t}.lora_{ab}.weight"].shape)
            if got != shape:
                raise AdapterMismatchError(
                    f"{path}: {t}.lora_{ab} has shape {got}, but r={rank} and the layer's "
                    f"{linear.in_features} -> {linear.out_features} need {shape}; the file's rank does "
                    "not match its config or this model.")
    if not wrapped:
        try:
            apply_lora(model, targets, rank, config.get("lora_alpha"), config.get("lora_dropout", 0.0),
                       config.get("use_rslora", False))
        except LoRAConfigError as err:
            raise AdapterMismatchError(f"{path} has an invalid config: {err}") from None
    with torch.no_grad():
        for name, layer in lora_layers(model).items():
            layer.lora_A.copy_(tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"])
            layer.lora_B.copy_(tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"])
    return model
