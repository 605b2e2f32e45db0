"""Measure how close training runs to this machine's limit, and what LoRA costs and saves.

Run by `make bench` (on a quiet machine: other heavy jobs distort every number). In one process
on whatever device is present (CUDA, Apple mps, else CPU) it measures:

- calibration: large float32 matmul GFLOP/s, the machine's practical ceiling;
- one baseline training epoch through `lorafm_helpers.fit` at the default batch size, its
  samples/s and GFLOP/s (6 x parameters x samples FLOP) and the ratio to calibration;
- LoRA r=8 steps against full fine-tuning steps on the same data, both through `fit`;
- inference on the test set: base, unmerged LoRA and merged LoRA;
- this process's peak resident memory, and the series' wall time from the executed notebooks'
  papermill metadata (build/executed/, written by `make tutorial`).

Every timing is repeated after a warm-up and reported as the median; what is compared (epoch and
calibration, full and LoRA steps, the three inference variants) alternates round by round, so that
a slow spell of the machine hits both sides of a ratio. Writes
benchmarks/results.json and the table between `<!-- bench:start -->` and `<!-- bench:end -->` in
benchmarks/README.md and README.md. `--quick` uses tiny sizes, to check that the script works.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
import torch
from torch import nn

from lorafm_helpers import (
    BASELINE_RECIPE,
    DeepNN,
    apply_lora,
    count_parameters,
    fit,
    load_fashion_mnist,
    lora_layers,
    pick_device,
    predict,
    set_seed,
)
from lorafm_helpers.atomic import atomic_write

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")
LORA = {"targets": ("linear1", "linear2", "linear3"), "rank": 8, "alpha": 16}
# name: (comparison, bound). The floor that `make bench` should meet on a 2-core CPU.
TARGETS = {
    "train_epoch_gflops_ratio": (">=", 0.5),
    "lora_vs_full_step_ratio": ("<=", 0.70),
    "merged_vs_base_inference_ratio": ("<=", 1.05),
    "series_wall_s": ("<=", 600),
    "peak_rss_mb": ("<=", 3072),
}


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does. `None` samples = the whole split."""

    matmul_n: int
    epoch_samples: int | None
    step_batches: int
    inference_samples: int | None
    repeats: int  # rounds of epoch + calibration, and of full + LoRA steps
    matmuls_per_round: int
    inference_repeats: int
    warmup: int


FULL = Sizes(matmul_n=2048, epoch_samples=None, step_batches=200, inference_samples=None, repeats=5,
             matmuls_per_round=10, inference_repeats=20, warmup=1)
QUICK = Sizes(matmul_n=256, epoch_samples=1024, step_batches=4, inference_samples=512, repeats=2,
              matmuls_per_round=2, inference_repeats=2, warmup=1)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that a timer measures finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn` takes, with the device synchronised on both sides."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_medians(fns: dict[str, Callable[[], object]], device: torch.device,
                        repeats: int, warmup: int) -> dict[str, list[float]]:
    """Time every function `warmup` times (discarded), then `repeats` rounds taking each in
    turn, so that a slow spell of the machine hits all of them alike. Returns the samples."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(timed(fn, device))
    return samples


def matmuls(device: torch.device, n: int, count: int) -> Callable[[], None]:
    """A function computing `count` (n x n) @ (n x n) float32 products, 2 n^3 FLOP each."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)

    def run() -> None:
        for _ in range(count):
            a @ b

    return run


def lora_model(base: nn.Module) -> nn.Module:
    """A copy of `base` wrapped with the series' LoRA configuration (r=8, alpha=16)."""
    return apply_lora(copy.deepcopy(base), **LORA)


def merged_copy(model: nn.Module) -> nn.Module:
    """A copy of a LoRA-wrapped model with every LoRA layer merged into its base weight."""
    merged = copy.deepcopy(model)
    for layer in lora_layers(merged).values():
        layer.merge()
    return merged


def series_wall_seconds(executed_dir: Path) -> tuple[float | None, int]:
    """Sum of `metadata.papermill.duration` over the executed chapters (NN_*.ipynb) in
    `executed_dir`, and how many chapters that is; None when any chapter lacks it or none exist."""
    paths = sorted(executed_dir.glob("[0-9][0-9]_*.ipynb")) if executed_dir.is_dir() else []
    durations = [nbformat.read(p, as_version=4).metadata.get("papermill", {}).get("duration")
                 for p in paths]
    if not durations or any(not isinstance(d, (int, float)) for d in durations):
        return None, len(paths)
    return float(sum(durations)), len(paths)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def cpu_pressure() -> float | None:
    """Linux's CPU pressure (share of the last 60 s in which some task waited for a core), in %.

    This benchmark keeps every core busy itself, so a high value means that something else ran
    at the same time and the timings are noisy. None where /proc/pressure is unavailable.
    """
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(field.split("=") for field in line.split()[1:])["avg60"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def machine(device: torch.device) -> dict:
    """CPU model, thread counts, device and library versions of this run."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def targets_met(results: dict) -> dict[str, bool | None]:
    """For each target, whether the measured value meets it (None when not measured)."""
    met = {}
    for name, (op, bound) in TARGETS.items():
        value = results[name]
        met[name] = None if value is None else (value >= bound if op == ">=" else value <= bound)
    return met


def run(sizes: Sizes, executed_dir: Path, quick: bool) -> dict:
    """Every measurement; returns the results dict written to results.json."""
    device = pick_device()
    set_seed(0)
    data = load_fashion_mnist()
    batch_size = BASELINE_RECIPE["batch_size"]
    train_x, train_y = data.train_x[: sizes.epoch_samples], data.train_y[: sizes.epoch_samples]
    test_x = data.test_x[: sizes.inference_samples]
    samples: dict[str, list[float]] = {}

    # One epoch exactly as chapter 01 trains (fit: in-memory slices, Adam, cosine schedule),
    # alternating with the calibration matmuls so that both see the same state of the machine.
    base = DeepNN().to(device)
    n_params = count_parameters(base)
    epoch_flop = 6 * n_params * len(train_x)
    rounds = interleaved_medians(
        {"matmul": matmuls(device, sizes.matmul_n, sizes.matmuls_per_round),
         "epoch": lambda: fit(base, train_x, train_y, epochs=1, batch_size=batch_size, progress=False)},
        device, sizes.repeats, sizes.warmup,
    )
    samples["matmul_s"] = [s / sizes.matmuls_per_round for s in rounds["matmul"]]
    samples["epoch_s"] = rounds["epoch"]
    calibration_gflops = 2 * sizes.matmul_n**3 / statistics.median(samples["matmul_s"]) / 1e9
    epoch_s = statistics.median(samples["epoch_s"])

    # LoRA r=8 steps against full fine-tuning steps: same data, same batches, same loop.
    step_n = sizes.step_batches * batch_size
    step_x, step_y = data.train_x[:step_n], data.train_y[:step_n]
    full, lora = copy.deepcopy(base), lora_model(base)
    steps = interleaved_medians(
        {name: (lambda m=m: fit(m, step_x, step_y, epochs=1, batch_size=batch_size, progress=False))
         for name, m in (("full", full), ("lora", lora))},
        device, sizes.repeats, sizes.warmup,
    )
    samples["full_step_s"] = [s / sizes.step_batches for s in steps["full"]]
    samples["lora_step_s"] = [s / sizes.step_batches for s in steps["lora"]]
    full_step_s, lora_step_s = (statistics.median(samples[k]) for k in ("full_step_s", "lora_step_s"))

    # Inference on the test set; the LoRA model's B is no longer zero after the steps above.
    merged = merged_copy(lora)
    inference = interleaved_medians(
        {name: (lambda m=m: predict(m, test_x)) for name, m in
         (("base", base), ("unmerged", lora), ("merged", merged))},
        device, sizes.inference_repeats, sizes.warmup,
    )
    for name, values in inference.items():
        samples[f"inference_{name}_s"] = values
    inference_s = {name: statistics.median(values) for name, values in inference.items()}
    merged_diff = (predict(merged, test_x) - predict(lora, test_x)).abs().max().item()

    series_wall_s, series_chapters = series_wall_seconds(executed_dir)
    results = {
        "quick": quick,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(device),
        "sizes": asdict(sizes),
        "calibration_gflops": calibration_gflops,
        "batch_size": batch_size,
        "parameters": n_params,
        "train_epoch_samples": len(train_x),
        "train_epoch_flop": epoch_flop,
        "train_epoch_s": epoch_s,
        "train_samples_per_s": len(train_x) / epoch_s,
        "train_epoch_gflops": epoch_flop / epoch_s / 1e9,
        "train_epoch_gflops_ratio": epoch_flop / epoch_s / 1e9 / calibration_gflops,
        "lora_rank": LORA["rank"],
        "lora_alpha": LORA["alpha"],
        "lora_trainable_parameters": count_parameters(lora, trainable_only=True),
        "full_step_ms": full_step_s * 1e3,
        "lora_step_ms": lora_step_s * 1e3,
        "lora_vs_full_step_ratio": lora_step_s / full_step_s,
        "inference_samples": len(test_x),
        "inference_base_ms": inference_s["base"] * 1e3,
        "inference_unmerged_ms": inference_s["unmerged"] * 1e3,
        "inference_merged_ms": inference_s["merged"] * 1e3,
        "merged_vs_base_inference_ratio": inference_s["merged"] / inference_s["base"],
        "unmerged_vs_base_inference_ratio": inference_s["unmerged"] / inference_s["base"],
        "merged_max_abs_logit_diff": merged_diff,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_pressure_avg60_pct": cpu_pressure(),
        "series_wall_s": series_wall_s,
        "series_chapters": series_chapters,
        "targets": {name: f"{op} {bound}" for name, (op, bound) in TARGETS.items()},
        "samples": samples,
    }
    results["targets_met"] = targets_met(results)
    return results


def markdown_table(results: dict) -> str:
    """The results as a Markdown table: measure, value, target, met."""
    r, met = results, results["targets_met"]

    def row(label: str, value: str, name: str | None = None) -> str:
        target, ok = ("", "")
        if name in TARGETS:
            target = results["targets"][name]
            ok = {True: "yes", False: "**no**", None: "not measured"}[met[name]]
        return f"| {label} | {value} | {target} | {ok} |"

    series = ("not measured (run `make tutorial` first)" if r["series_wall_s"] is None
              else f"{r['series_wall_s']:.0f} s ({r['series_chapters']} chapters)")
    m, z = r["machine"], r["sizes"]
    lines = [
        "| measure | value | target | met |",
        "|---|---|---|---|",
        row(f"calibration: {r['sizes']['matmul_n']}² float32 matmul",
            f"{r['calibration_gflops']:.1f} GFLOP/s"),
        row(f"training epoch ({r['train_epoch_samples']:,} images, batch {r['batch_size']})",
            f"{r['train_epoch_s']:.2f} s, {r['train_samples_per_s']:,.0f} images/s, "
            f"{r['train_epoch_gflops']:.1f} GFLOP/s"),
        row("`train_epoch_gflops_ratio` (epoch GFLOP/s ÷ calibration)",
            f"{r['train_epoch_gflops_ratio']:.2f}", "train_epoch_gflops_ratio"),
        row(f"training step, full fine-tuning / LoRA r={r['lora_rank']}",
            f"{r['full_step_ms']:.2f} ms / {r['lora_step_ms']:.2f} ms"),
        row("`lora_vs_full_step_ratio`", f"{r['lora_vs_full_step_ratio']:.2f}", "lora_vs_full_step_ratio"),
        row(f"inference, {r['inference_samples']:,} test images: base / unmerged / merged",
            f"{r['inference_base_ms']:.1f} / {r['inference_unmerged_ms']:.1f} / "
            f"{r['inference_merged_ms']:.1f} ms"),
        row("`merged_vs_base_inference_ratio`", f"{r['merged_vs_base_inference_ratio']:.2f}",
            "merged_vs_base_inference_ratio"),
        row("`unmerged_vs_base_inference_ratio`", f"{r['unmerged_vs_base_inference_ratio']:.2f}"),
        row("`peak_rss_mb` (this benchmark process)", f"{r['peak_rss_mb']:.0f} MiB", "peak_rss_mb"),
        row("`series_wall_s` (last `make tutorial`)", series, "series_wall_s"),
        "",
        f"Measured {r['measured_at']} on {m['cpu']} ({m['cpu_count']} CPUs, {m['torch_threads']} torch "
        f"threads, device {m['device']}), torch {m['torch']}. Medians after warm-up: {z['repeats']} rounds "
        f"of one epoch + {z['matmuls_per_round']} calibration matmuls, {z['repeats']} rounds of "
        f"{z['step_batches']} full + {z['step_batches']} LoRA steps, {z['inference_repeats']} inference "
        f"rounds{' (quick mode: tiny sizes, not a measurement)' if r['quick'] else ''}.",
    ]
    if r["cpu_pressure_avg60_pct"] is not None:
        lines.append(f"CPU pressure over the last minute of the run: {r['cpu_pressure_avg60_pct']:.1f}% "
                     "(above a few % means other jobs competed for the cores and timings are noisy).")
    return "\n".join(lines)


def write_between_markers(path: Path, text: str) -> bool:
    """Replace what lies between the bench markers in `path` by `text`; False if no markers."""
    if not path.is_file():
        return False
    content = path.read_text()
    start, end = (content.find(marker) for marker in MARKERS)
    if start < 0 or end < start:
        return False
    updated = f"{content[: start + len(MARKERS[0])]}\n{text}\n{content[end:]}"
    with atomic_write(path) as f:
        f.write(updated)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the script works, measures nothing")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--tables", type=Path, nargs="*",
                        default=[ROOT / "benchmarks" / "README.md", ROOT / "README.md"],
                        help="Markdown files whose bench markers receive the table")
    parser.add_argument("--executed", type=Path, default=ROOT / "build" / "executed",
                        help="executed notebooks of the last `make tutorial`")
    args = parser.parse_args(argv)

    results = run(QUICK if args.quick else FULL, args.executed, args.quick)
    with atomic_write(args.output) as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    table = markdown_table(results)
    print(table)
    print(f"\nwrote {args.output}")
    for path in args.tables:
        if write_between_markers(path, table):
            print(f"updated the table in {path}")
        else:
            print(f"no {MARKERS[0]} ... {MARKERS[1]} markers in {path}; table not written there",
                  file=sys.stderr)
    missed = [name for name, ok in results["targets_met"].items() if ok is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
