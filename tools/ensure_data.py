"""Make Fashion-MNIST available: find it, else install Debian's package, else download it.

Called by `make data`. Exits non-zero with every remedy named when nothing works.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

from lorafm_helpers.data import DatasetCorruptError, DatasetNotFoundError, load_fashion_mnist


def found() -> bool:
    try:
        data = load_fashion_mnist()
    except DatasetNotFoundError:
        return False
    print(f"Fashion-MNIST found and verified in {data.source}")
    return True


def apt_install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("apt-get is not usable as root here; skipping the Debian package.")
        return
    print("installing Debian's dataset-fashion-mnist ...", flush=True)
    quiet = {"stdout": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "dataset-fashion-mnist"], **quiet).returncode:
        subprocess.run(["apt-get", "update"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "dataset-fashion-mnist"], **quiet)


def main() -> int:
    try:
        if found():
            return 0
        apt_install()
        if found():
            return 0
        print("trying torchvision's download into ./data ...", flush=True)
        socket.setdefaulttimeout(30)  # no network must mean a quick failure, not a hang
        data = load_fashion_mnist(download=True)
        print(f"Fashion-MNIST downloaded and verified in {data.source}")
        return 0
    except (DatasetNotFoundError, DatasetCorruptError) as err:
        print(f"\nmake data: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
