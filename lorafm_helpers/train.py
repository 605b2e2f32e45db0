"""Training, prediction and checkpoints.

Introduced in notebooks/01_baseline_training.ipynb.
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .atomic import atomic_write
from .model import DeepNN

# The reference recipe of chapter 01: a well-trained baseline (test accuracy about 0.90).
BASELINE_RECIPE = {"epochs": 15, "batch_size": 128, "lr": 1e-3, "cosine": True, "seed": 0}


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run repeats exactly on the same machine.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    """The fastest device present: cuda, then Apple's mps, then cpu.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits of `model` for every row of `x`, in eval mode, batched, on the model's device.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = torch.cat([model(x[i : i + batch_size].to(device)).cpu()
                        for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return logits


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of rows of `x` whose predicted class equals `y`.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    return (predict(model, x).argmax(1) == y).float().mean().item()


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    cosine: bool = True,
    class_weights: torch.Tensor | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> list[dict]:
    """Train the parameters of `model` that require grad, with Adam and cross-entropy.

    Batches are slices of the in-memory tensors, reshuffled every epoch with `seed`.
    `cosine` anneals the learning rate to zero over all steps; `class_weights` (10,) weights
    the loss per class. Returns one dict per epoch: epoch, train_loss, val_accuracy, lr, seconds.
    Introduced in notebooks/01_baseline_training.ipynb.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}.")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (every requires_grad is False).")
    # fused: one kernel per parameter instead of about ten; a baseline epoch takes ~20% less time on a
    # 2-core CPU (benchmarks/README.md), with the same accuracy.
    optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
                 if cosine else None)
    weight = None if class_weights is None else class_weights.to(device, torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    generator = torch.Generator().manual_seed(seed)
    history = []
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x), generator=generator)
        xs, ys = x[order].to(device), y[order].to(device)
        total = torch.zeros((), device=device)
        for i in range(0, len(xs), batch_size):
            loss = loss_fn(model(xs[i : i + batch_size]), ys[i : i + batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.detach()
        record = {
            "epoch": epoch,
            "train_loss": total.item() / steps_per_epoch,
            "val_accuracy": accuracy(model, *val) if val is not None else None,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}",
                        **({"val_acc": f"{record['val_accuracy']:.4f}"} if val is not None else {}))
    model.eval()
    return history


def save_checkpoint(model_or_state: nn.Module | dict, path: str | os.PathLike) -> Path:
    """Write a state dict atomically (temporary file, then rename) and return the path.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    path = Path(path)
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    with atomic_write(path, "wb") as f:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, f)
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """Read a state dict safely (`weights_only=True`); load it into `model` when given.

    Refuses a checkpoint whose keys or shapes do not fit `model`, naming the differences.
    Introduced in notebooks/01_baseline_training.ipynb.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; run notebooks/01_baseline_training.ipynb "
                                "or call load_or_train_baseline() to create it.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if model is not None:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        problems = [f"missing {k}" for k in expected.keys() - found.keys()]
        problems += [f"unexpected {k}" for k in found.keys() - expected.keys()]
        problems += [f"{k}: checkpoint {found[k]} vs model {expected[k]}"
                     for k in expected.keys() & found.keys() if found[k] != expected[k]]
        if problems:
            raise ValueError(f"checkpoint {path} does not fit {type(model).__name__}: "
                             + "; ".join(sorted(problems)))
        model.load_state_dict(state)
    return state


def load_or_train_baseline(artifacts_dir: str | os.PathLike, data=None, progress: bool = True) -> DeepNN:
    """The chapter-01 baseline from `artifacts_dir/baseline.pt`, trained and saved if missing.

    Training (BASELINE_RECIPE, about a minute on a 2-core CPU) needs `data`, or loads it.
    Returns the model in eval mode on the CPU.
    Introduced in notebooks/03_freezing_and_parameter_counts.ipynb.
    """
    path = Path(artifacts_dir) / "baseline.pt"
    if path.is_file():
        model = DeepNN()
        load_checkpoint(path, model)
        return model.eval()
    if data is None:
        from .data import load_fashion_mnist

        data = load_fashion_mnist()
    set_seed(BASELINE_RECIPE["seed"])
    model = DeepNN()
    fit(model, data.train_x, data.train_y, val=(data.val_x, data.val_y), progress=progress,
        desc="baseline (missing, training it)", **BASELINE_RECIPE)
    save_checkpoint(model, path)
    return model.eval()
