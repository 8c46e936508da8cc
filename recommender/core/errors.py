"""The failures a person can act on: bad input, bad settings, a failed run.

Everything here derives from :class:`RecommenderError`; the command line prints these as one
line (exit status 2 for input, 1 for a failed run) and lets every other exception, a bug,
show its traceback.
"""

from __future__ import annotations

__all__ = ["RecommenderError", "DataError", "SettingError", "UnknownModel", "UsageError",
           "TrainingError", "NotebookFailed"]


class RecommenderError(Exception):
    """A failure to report to the user in one line, not a bug."""


class DataError(RecommenderError, ValueError):
    """Input data that cannot be used, with where the problem is and what to do about it."""


class UsageError(RecommenderError, ValueError):
    """A mistake in the command line or in the arguments of a call."""


class SettingError(RecommenderError, ValueError, TypeError):
    """A model setting that is unknown, of the wrong type or impossible."""


class UnknownModel(RecommenderError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class TrainingError(RecommenderError, RuntimeError):
    """Training cannot go on (the loss became NaN or infinite)."""


class NotebookFailed(RecommenderError, RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""
