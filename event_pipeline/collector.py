"""The garbage collector during an import: paused from validation to the end (and during the CLI's start-up),
what was made meanwhile frozen.

Parsing and normalising an archive allocate millions of small objects and free none of them, and the
later steps a few hundred thousand more; Python's cyclic collector would traverse them again and again.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_RESUME_GC: list[bool] = []  # set while an import keeps the collector off: whether to turn it back on


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing and normalising allocate millions of small objects and free none of them; Python's
    cyclic GC would traverse them again and again (it was half the time of these steps, and ~4 s of
    CPU in the later steps of a 100k-session import). The collector is off while they are made, and
    they are then frozen (left out of collections; reference counting still frees them).

    After a valid archive the collector stays off for the rest of the import: planning, media and
    publishing make a few hundred thousand rows more, and the young-generation collections their
    allocations set off cost 4.6 s of 15 at 100k sessions (plan 1.4 -> 1.0 s, media 1.2 -> 0.6 s,
    pickling its plan 0.7 -> 0.35 s, applying it 0.6 -> 0.2 s). :func:`release_frozen`, called when
    the import ends however it ends (``publish_step``, the bulk import, the failure hook of the import
    assets, a dry run), unfreezes them and turns the collector back on, so a long-lived worker keeps
    collecting as before; a failed validation turns it back on at once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    except BaseException:
        if enabled:
            gc.enable()
        raise
    gc.freeze()  # only what a valid archive produced: a failed validation leaves nothing frozen
    if not _RESUME_GC:
        _RESUME_GC.append(enabled)


_HELD_UNTIL_EXIT: list[bool] = []  # see hold_until_exit


def hold_until_exit() -> None:
    """For a process that ends with its import (the CLI's): :func:`release_frozen` leaves the collector
    off and what validation froze frozen. Turned back on, the collector's first full collection walks
    every object of the import still referenced by the run (1.2 s at 100 000 sessions), in a process
    that is about to exit and free it all at once."""
    _HELD_UNTIL_EXIT.append(True)


def release_frozen() -> None:
    """Make what validation froze collectable again and turn the collector back on (if it was on before
    the import); called when an import ends, however it ends. Does nothing more when called again, nor
    in a process held until its exit (:func:`hold_until_exit`)."""
    if _HELD_UNTIL_EXIT:
        return
    gc.unfreeze()
    if _RESUME_GC and _RESUME_GC.pop():
        gc.enable()


_resume_to: bool | None = None  # while paused: whether the collector was enabled before


@contextlib.contextmanager
def startup_paused() -> Iterator[None]:
    """A command's start-up (``event-pipeline import``, before its job runs) with the collector off: the
    modules, definitions and instance it makes live as long as the process and are never garbage, yet each
    full collection traversed them again (~0.2 s of a 10-session import). At the end (or at
    :func:`resume_after_startup`, when the job starts) they are frozen and the collector is back on."""
    global _resume_to
    _resume_to = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        resume_after_startup()


def resume_after_startup() -> None:
    """Freeze what start-up made and turn the collector back on (if it was on); again: nothing."""
    global _resume_to
    if _resume_to is None:
        return
    gc.freeze()
    if _resume_to:
        gc.enable()
    _resume_to = None
