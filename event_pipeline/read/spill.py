"""Record bodies kept in a temporary file instead of Python objects, so memory follows the archive's
structure (ids, references), not its text.

A record's body is its fields and its ``extra`` (``NormRecord.values`` and ``.extra``): nine tenths of a
normalised archive's memory (100 000 sessions and 50 000 speakers: ~330 MiB of dicts and strings in Python;
the file is 215 MiB with the objects below). Each body is written as JSON (pickled where JSON cannot hold it
exactly) to an anonymous temporary file as the record is read (``ModelNormaliser``), and read back where a
stage needs it: the rows ``COPY`` writes, the few records a rare path looks at. What stays in memory per body:
its end offset (8 bytes), its form (1 byte) and the SHA-1 of its content (20 bytes), from which the plan tells
unchanged rows without reading the body. The same file keeps other objects needed only on a rare path: the raw
values of a record's unresolved references, the archive shape's first object per reference target
(``shape.FileShape``).

The file is made by :func:`tempfile.TemporaryFile` (``TMPDIR``; unlinked at once, freed when closed or
when the process ends). It is never pickled: a normalised archive pickled or needed in another
process is read again from its archive (``importer/validating.py``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from array import array
from datetime import UTC, datetime
from typing import Any

import orjson

from event_pipeline.read.scratch import scratch_file, writing

DIGEST = hashlib.sha1().digest_size  # bytes of a body's digest
_FLUSH = 1 << 20  # bytes of bodies gathered before one write
_PICKLED = 0  # a body's form (``BodySpill._forms``): pickled, else JSON with the times of ``_times[form - 1]``


def _json(values: dict[str, Any], extra: dict[str, Any]) -> bytes | None:
    """A body serialised by orjson, or None if orjson refuses a value."""
    try:
        return orjson.dumps([values, extra])
    except (TypeError, orjson.JSONEncodeError):
        return None


def _repr(values: dict[str, Any], extra: dict[str, Any]) -> bytes:
    return repr([list(values.items()), list(extra.items())]).encode("utf-8", "surrogatepass")


def body_digest(values: dict[str, Any], extra: dict[str, Any]) -> bytes:
    """The SHA-1 (20 bytes) of a record's fields and ``extra`` serialised by orjson: key order counts
    (``extra`` keeps the archive's), ``1``, ``1.0`` and ``true`` differ. A value orjson refuses (an
    integer beyond 64 bits, a lone surrogate: rows never hold one, validation refuses them) falls back
    to ``repr``."""
    text = _json(values, extra)
    return hashlib.sha1(text if text is not None else _repr(values, extra)).digest()


class BodySpill:
    """An append-only store of record bodies ``(values, extra)``, numbered from 0 in the order added.

    ``add`` returns a body's number (``add_object`` numbers other objects alike); ``load`` gives a new
    copy of it each time (changing the copy changes nothing stored: store the change with ``add`` and use
    the new number); ``digest`` its :func:`body_digest`. Loads may come from several threads. Raises
    ``OSError`` when the temporary file cannot be written (a full ``TMPDIR`` named: ``scratch.writing``).

    A body is stored as the very JSON its digest is taken of, its time fields (``add``'s ``times``: the
    record's ``datetime`` fields, which JSON writes as ISO 8601 text) parsed back on loading; a body JSON
    cannot hold exactly (a time that is no UTC ``datetime``, a value orjson refuses) is pickled."""

    def __init__(self) -> None:
        self._file = scratch_file("event-pipeline-bodies-")
        self._fd = self._file.fileno()
        self._ends = array("q")  # each body's end offset in the file (its start: the previous one's end)
        self._forms = bytearray()  # each body's form: _PICKLED, or 1 + its times' index in _times
        self._times: list[tuple[str, ...]] = []
        self._digests = bytearray()
        self._pending = bytearray()  # bodies added since the last write
        self._written = 0  # bytes in the file
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ends)

    def add(self, values: dict[str, Any], extra: dict[str, Any], times: tuple[str, ...] = ()) -> int:
        """Store a body; ``times``: the names of the fields that hold a ``datetime`` or None."""
        form = self._form(times)
        for name in times:
            value = values.get(name)
            if value is not None and (type(value) is not datetime or value.tzinfo is not UTC):
                form = _PICKLED  # JSON's ISO 8601 text would not give it back exactly
                break
        data = _json(values, extra) if form != _PICKLED else None
        if data is not None:
            self._digests += hashlib.sha1(data).digest()
            self._forms.append(form)
        else:
            self._digests += hashlib.sha1(_json(values, extra) or _repr(values, extra)).digest()
            data = pickle.dumps((values, extra), pickle.HIGHEST_PROTOCOL)
            self._forms.append(_PICKLED)
        self._pending += data
        self._ends.append(self._written + len(self._pending))
        if len(self._pending) >= _FLUSH:
            self._flush()
        return len(self._ends) - 1

    def add_object(self, obj: Any) -> int:
        """Store any picklable object that is no body (its digest is zeros): what a record keeps for a rare
        path (``NormRecord.raw_refs``); :meth:`load` gives it back."""
        self._digests += bytes(DIGEST)
        self._forms.append(_PICKLED)
        self._pending += pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        self._ends.append(self._written + len(self._pending))
        if len(self._pending) >= _FLUSH:
            self._flush()
        return len(self._ends) - 1

    def load(self, index: int) -> Any:
        """Body ``index`` as ``(values, extra)`` (or the object :meth:`add_object` stored), a new copy."""
        if self._file.closed:
            raise ValueError("the record bodies of this archive were freed (its import ended)")
        end = self._ends[index]
        start = self._ends[index - 1] if index else 0
        if end > self._written:
            with self._lock:
                if end > self._written:
                    self._flush()
        data = os.pread(self._fd, end - start, start)
        form = self._forms[index]
        if form == _PICKLED:
            return pickle.loads(data)
        values, extra = orjson.loads(data)
        for name in self._times[form - 1]:
            text = values.get(name)
            if text is not None:
                values[name] = datetime.fromisoformat(text)
        return values, extra

    def digest(self, index: int) -> bytes:
        return bytes(self._digests[index * DIGEST : (index + 1) * DIGEST])

    def size(self) -> int:
        """Bytes of bodies stored (in the file and waiting to be written)."""
        return self._written + len(self._pending)

    def close(self) -> None:
        """Free the temporary file; loads raise ValueError afterwards."""
        self._file.close()
        self._pending = bytearray()

    def times(self, index: int) -> tuple[str, ...]:
        """The ``times`` body ``index`` was added with (when JSON; a pickled body needs none)."""
        form = self._forms[index]
        return self._times[form - 1] if form != _PICKLED else ()

    def _form(self, times: tuple[str, ...]) -> int:
        if self._times and self._times[-1] is times:  # the usual case: the model read last
            return len(self._times)
        if times in self._times:  # a handful: one per model
            return self._times.index(times) + 1
        if len(self._times) >= 255:
            return _PICKLED  # one byte per body says its form
        self._times.append(times)
        return len(self._times)

    def _flush(self) -> None:
        view = memoryview(self._pending)
        try:
            with writing("the records' bodies"):
                while view:
                    done = os.pwrite(self._fd, view, self._written)
                    self._written += done
                    view = view[done:]
        finally:
            view.release()
        self._pending = bytearray()

    def __reduce__(self):
        raise TypeError("a BodySpill is not pickled: read the archive again (see importer/validating.py)")
