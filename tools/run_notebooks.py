"""Execute the chapters in order with papermill, at their default parameters unless told.

Used by `make tutorial` and by the notebook tests. A chapter that raises, or that leaves a code
cell unexecuted, counts as failed: a tutorial that did not really run never passes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 900


def chapters() -> list[Path]:
    """The chapter sources, NN_slug.ipynb, in reading order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def unexecuted_cells(path: Path) -> list[int]:
    """Indices of code cells in an executed notebook that never ran."""
    cells = json.loads(path.read_text())["cells"]
    return [i for i, c in enumerate(cells)
            if c["cell_type"] == "code" and "".join(c["source"]).strip() and c["execution_count"] is None]


def run_chapter(source: Path, output_dir: Path, artifacts_dir: Path,
                parameters: dict | None = None) -> Path:
    """Execute one chapter into `output_dir`, writing its artifacts to `artifacts_dir`."""
    output = output_dir / source.name
    output_dir.mkdir(parents=True, exist_ok=True)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(source), str(output),
        parameters={"ARTIFACTS_DIR": str(artifacts_dir.resolve()), **(parameters or {})},
        kernel_name="python3", cwd=str(NOTEBOOKS), execution_timeout=CELL_TIMEOUT_S,
        progress_bar=False,
    )
    missing = unexecuted_cells(output)
    if missing:
        raise RuntimeError(f"{source.name}: code cells {missing} did not run.")
    return output


def run_series(output_dir: Path, artifacts_dir: Path, parameters: dict[str, dict] | None = None,
               only: list[str] | None = None) -> dict[str, Exception | None]:
    """Execute every chapter (or those whose names start with an entry of `only`) in order.

    `parameters` maps a chapter's stem to its overrides. Returns each chapter's error or None;
    later chapters still run after a failure, since each one stands on its own.
    """
    results = {}
    for source in chapters():
        if only and not any(source.stem.startswith(o) for o in only):
            continue
        start = time.perf_counter()
        print(f"executing {source.name} ...", flush=True)
        try:
            run_chapter(source, output_dir, artifacts_dir, (parameters or {}).get(source.stem))
            results[source.stem] = None
            print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
        except Exception as err:  # report every chapter, then fail
            results[source.stem] = err
            print(f"  FAILED after {time.perf_counter() - start:.0f} s: {err}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "executed")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--only", nargs="*", help="chapter prefixes, e.g. 01 04")
    args = parser.parse_args()
    results = run_series(args.output, args.artifacts, only=args.only)
    failed = [name for name, err in results.items() if err is not None]
    if failed:
        print(f"failed chapters: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
