"""Errors a learner can cause, shown as one readable message instead of a long traceback.

Introduced in notebooks/01_baseline_training.ipynb.
"""

from __future__ import annotations


class LorafmError(Exception):
    """Base of the package's own errors. In Jupyter only the message is shown
    (IPython calls `_render_traceback_`); everywhere else it is a normal exception."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class ParameterError(LorafmError, ValueError):
    """A notebook parameter is out of range or of the wrong type."""


def require(ok: bool, message: str) -> None:
    """Raise ParameterError(message) unless `ok`; used by every chapter's parameter check.

    Introduced in notebooks/01_baseline_training.ipynb.
    """
    if not ok:
        raise ParameterError(message)
