"""The results table (baseline, LoRA recipe, Dress logit bias, original write-up), read from the
metrics JSON the chapters write; shown in README.md and on the site.

    python tools/results_table.py                  print the table
    python tools/results_table.py --write-readme   replace the README block between the markers
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lorafm_helpers.atomic import atomic_write  # noqa: E402
from lorafm_helpers.data import CLASSES, DRESS  # noqa: E402
from lorafm_helpers.errors import LorafmError  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"
COLUMNS = [("accuracy", "test accuracy"), ("dress_precision", "Dress precision"),
           ("dress_recall", "Dress recall"), ("dress_f1", "Dress F1"),
           ("trainable_params", "trainable parameters")]


class ReadmeMarkersError(LorafmError, ValueError):
    """README.md lacks the markers between which the results table goes."""


def _row(label: str, source: str, metrics: dict, trainable: int, published: bool = False) -> dict:
    dress = metrics["per_class"][CLASSES[DRESS]]
    return {"label": label, "source": source, "accuracy": metrics["accuracy"],
            "dress_precision": dress["precision"], "dress_recall": dress["recall"], "dress_f1": dress["f1"],
            "trainable_params": int(trainable), "published": published}


def results_rows(artifacts_dir: str | Path) -> list[dict]:
    """One dict per row (label, source, accuracy, dress_precision, dress_recall, dress_f1,
    trainable_params, published), test-set numbers; rows whose JSON file is missing are left out."""
    artifacts = Path(artifacts_dir)
    rows = []
    baseline_path = artifacts / "baseline_metrics.json"
    if baseline_path.is_file():
        baseline = json.loads(baseline_path.read_text())
        rows.append(_row("Baseline (ch 01)", baseline_path.name, baseline, baseline["parameters"]))
    lora_path = artifacts / "lora_metrics.json"
    if lora_path.is_file():
        lora = json.loads(lora_path.read_text())
        rank = lora["recipe"]["rank"]
        rows.append(_row(f"LoRA r={rank} recipe (ch 04)", lora_path.name, lora["lora"],
                         lora["trainable_params"]))
        rows.append(_row("Dress logit bias, no training (ch 04)", lora_path.name, lora["logit_bias"], 0))
        original = lora["original_writeup"]
        rows.append(_row("Original write-up", lora_path.name, original, original["trainable_params"],
                         published=True))
    return rows


def _cell(key: str, value, published: bool) -> str:
    if key == "trainable_params":
        return f"{value:,}"
    return f"{value:g}" if published else f"{value:.3f}"


def results_markdown(artifacts_dir: str | Path) -> str:
    """The rows of `results_rows` as a markdown table (a sentence instead when none exist yet)."""
    rows = results_rows(artifacts_dir)
    if not rows:
        return ("No results yet: run chapters 01 and 04 (`make tutorial`) to write "
                "`baseline_metrics.json` and `lora_metrics.json`.\n")
    lines = ["| model | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for row in rows:
        cells = [_cell(key, row[key], row["published"]) for key, _ in COLUMNS]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    if any(row["published"] for row in rows):
        lines.append("")
        lines.append("The original write-up's numbers are as published (two decimals), measured on its "
                     "own baseline, which was trained far less than ours (see chapters 01 and 04).")
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    """`text` with everything between the results markers replaced by `block`."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ReadmeMarkersError(f"README.md must contain one `{START}` line followed by one `{END}` "
                                 "line; put them back where the results table goes.")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def write_readme(artifacts_dir: str | Path, readme: str | Path) -> Path:
    """Rewrite the results block of `readme` from the artifacts, atomically."""
    readme = Path(readme)
    text = replace_block(readme.read_text(), results_markdown(artifacts_dir))
    with atomic_write(readme) as f:
        f.write(text)
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--write-readme", action="store_true", help="rewrite the README's results block")
    args = parser.parse_args()
    if args.write_readme:
        try:
            print(f"wrote the results table into {write_readme(args.artifacts, args.readme)}")
        except LorafmError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    else:
        print(results_markdown(args.artifacts), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
