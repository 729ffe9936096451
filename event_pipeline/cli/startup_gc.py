"""The command's start-up with Python's cyclic garbage collector paused.

Before its job runs, ``event-pipeline import`` makes a few hundred thousand
objects that live as long as the process: the modules of Dagster,
SQLAlchemy, pydantic and this project, the definitions, the instance. They
are never garbage, yet each collection of the oldest generation traversed
all of them again: ~0.2 s of a 10-session import's ~2 s. So the collector is
off while they are made (:func:`paused`), and they are frozen (left out of
later collections; reference counting still frees whatever becomes
unreferenced) before the job runs with the collector on (:func:`resume`).
``gc.unfreeze`` at the end of an import (the importer's
``release_frozen``) makes them collectable again.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_resume_to: bool | None = None  # while paused: whether the collector was enabled before


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The block with the collector off, unless :func:`resume` turned it back on earlier."""
    global _resume_to
    _resume_to = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        resume()


def resume() -> None:
    """Freeze what start-up made and turn the collector back on (if it was on); again: nothing."""
    global _resume_to
    if _resume_to is None:
        return
    gc.freeze()
    if _resume_to:
        gc.enable()
    _resume_to = None
