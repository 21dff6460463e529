"""Errors that mean "what you gave is wrong", as opposed to bugs.

Everything a user hands swarmcast -- a pipeline setting, a store, a checkpoint, a path -- is
checked, and a problem with it raises an ``InputError`` whose message names the thing and what
is wrong with it. The command line prints such errors as one line and exits 2; any other
exception is a bug and keeps its traceback. The subclasses also derive from the built-in
exception a Python caller would expect (a missing store is a ``FileNotFoundError``, an
unknown channel a ``KeyError``), so code that catches those keeps working.
"""

from __future__ import annotations


class InputError(ValueError):
    """A user input (setting, path, store, checkpoint) is wrong; the message says which and why."""


class InputNotFoundError(InputError, FileNotFoundError):
    """A store, folder or file the user named does not exist."""


class OutputExistsError(InputError, FileExistsError):
    """An output exists and may not be replaced without ``--overwrite``."""


class UnknownNameError(InputError, KeyError):
    """A channel, region or statistic name that the store or the vocabulary does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


__all__ = ["InputError", "InputNotFoundError", "OutputExistsError", "UnknownNameError"]
