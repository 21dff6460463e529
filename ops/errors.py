"""Errors that mean "what you gave is wrong", as opposed to bugs.

Everything a user hands swarmcast -- a pipeline setting, a store, a checkpoint, a path -- is
checked, and a problem with it raises an ``InputError`` whose message names the thing and what
is wrong with it. The command line prints such errors as one line and exits 2; any other
exception is a bug and keeps its traceback. The subclasses also derive from the built-in
exception a Python caller would expect (a missing store is a ``FileNotFoundError``, an
unknown channel a ``KeyError``), so code that catches those keeps working.

One error here is not about input: ``StorageFullError``, a write refused for room (a full disk,
a quota, a file-size limit). It is no bug either, so the command line prints it as one line.
"""

from __future__ import annotations

import errno
import os


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


class StorageFullError(OSError):
    """The disk (or quota, or file-size limit) under an output refused a write; the message
    names the output and says what was kept. Not the user's input, but not a bug either."""


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""errno values of a write refused for room: no space, quota exceeded, file-size limit."""


def storage_full_reason(err: BaseException) -> str | None:
    """``os.strerror`` of the first ``FULL_ERRNOS`` error in ``err``, its causes or contexts
    (a Ray task error carries the remote one as ``cause``), else None."""
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return os.strerror(e.errno)
        stack += [c for c in (getattr(e, "cause", None), e.__cause__, e.__context__) if isinstance(c, BaseException)]
    return None


__all__ = [
    "FULL_ERRNOS",
    "InputError",
    "InputNotFoundError",
    "OutputExistsError",
    "StorageFullError",
    "UnknownNameError",
    "storage_full_reason",
]
