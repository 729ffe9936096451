"""What an import takes in: the archive key rule and the archive file check, in one place.

The key names an archive's event everywhere: Dagster's partition, the run
tags, the ``import_jobs`` rows, the media storage paths. The command line
(``--key`` or the file name), the bulk import, the drop-folder sensor and the
asset job all derive and check it here, so the same file name always gives
the same key, and a key that could break a storage path or a partition is
refused before anything is built from it.

The rule (also in the README):

- from a file name: the name without its ``.zip`` suffix, matched in any
  case (``Conf.zip``, ``Conf.ZIP`` and ``Conf.Zip`` are all ``Conf``);
- 1 to 128 characters, each an ASCII letter, a digit, ``.``, ``_`` or ``-``;
- not starting with ``.`` or ``-`` (no hidden names, ``.``/``..``, or option
  look-alikes) and without ``..`` anywhere (Dagster refuses ``...`` in a
  partition key).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

MAX_KEY_LENGTH = 128
KEY_CHARACTERS = re.compile(r"[A-Za-z0-9._-]")
RULE = (
    f"a key is 1 to {MAX_KEY_LENGTH} characters, each an ASCII letter, a digit, '.', '_' or '-', "
    "not starting with '.' or '-', without '..'"
)
ARCHIVE_SUFFIX = ".zip"
_SHOWN = 40  # characters of a refused key quoted in its error


class InvalidKey(ValueError):
    """A key (given, or derived from a file name) breaks the rule; the message says why."""


def _shown(key: str) -> str:
    text = key if len(key) <= _SHOWN else key[:_SHOWN] + "..."
    return ascii(text)  # any character prints, a lone surrogate or a NUL included


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid archive key, in a phrase, or None if it is one."""
    if not key:
        return "it is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is {len(key)} characters long"
    bad = next((c for c in key if not KEY_CHARACTERS.fullmatch(c)), None)
    if bad is not None:
        return f"it contains {ascii(bad)}"
    if key[0] in ".-":
        return f"it starts with {key[0]!r}"
    if ".." in key:
        return "it contains '..'"
    return None


def key_error(key: str) -> str | None:
    """The full error message for an invalid ``key`` (what it is, why, and the rule), or None."""
    reason = key_problem(key)
    return None if reason is None else f"invalid archive key {_shown(key)}: {reason}; {RULE}"


def check_key(key: str) -> str:
    """``key`` itself if it is valid; raises :class:`InvalidKey` (message: :func:`key_error`) if not."""
    error = key_error(key)
    if error:
        raise InvalidKey(error)
    return key


def is_archive_name(name: str) -> bool:
    """Whether a file name ends in ``.zip`` in any case (what the drop folder and bulk import take)."""
    return name.lower().endswith(ARCHIVE_SUFFIX) and len(name) > len(ARCHIVE_SUFFIX)


def key_from_name(name: str) -> str:
    """The key a file name gives, unchecked: the name without a ``.zip`` suffix in any case."""
    return name[: -len(ARCHIVE_SUFFIX)] if name.lower().endswith(ARCHIVE_SUFFIX) else name


def key_for(path: str | os.PathLike[str]) -> str:
    """The checked key of an archive path, a local path or an ``s3://`` URL (its last part).

    Raises :class:`InvalidKey` if the file name gives no valid key.
    """
    text = os.fspath(path)
    name = PurePosixPath(text).name if text.startswith("s3://") else Path(text).name
    return check_key(key_from_name(name))


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be an archive, without opening it, or None if it is a regular file.

    A FIFO would block the first read forever and a device such as
    ``/dev/zero`` never ends, so only regular files (symbolic links to them
    included) are taken.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"archive not found: {path}"
    except OSError as exc:
        return f"cannot read archive {path}: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        kind = "a directory"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO (named pipe)"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "a special file"
    return f"not an archive: {path} is {kind}, not a regular file"
