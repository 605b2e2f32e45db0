"""Start JupyterLab on the chapters: this virtual environment, localhost only, with a token.

`make lab` runs this; tests/test_lab.py starts its server with the same command and environment.
The server prints the address to open, including a fresh token (or uses $JUPYTER_TOKEN).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lab_command(root_dir: Path, port: int = 8888, open_browser: bool = True) -> list[str]:
    """JupyterLab serving `root_dir` on 127.0.0.1 only (`port` 0 lets the system pick one)."""
    return [
        sys.executable, "-m", "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.open_browser={open_browser}",
        # Jupyter refuses to run as root unless told; containers and CI machines often are root.
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
    ]


def lab_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) set up so that the default `Python 3`
    kernel is this environment's interpreter, which has lorafm_helpers installed."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PREFER_ENV_PATH"] = "1"  # this venv's kernelspec before a user-wide python3
    return env


def main() -> None:
    command = lab_command(ROOT / "notebooks")
    os.execve(command[0], command, lab_environment())


if __name__ == "__main__":
    main()
