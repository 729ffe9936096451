"""Receiving an uploaded archive: streamed from the request into the upload store, bounded, checked.

The multipart body is parsed as it arrives (``python-multipart``'s streaming
parser, the one Starlette uses) and the ``file`` part is written chunk by
chunk to a temporary file in the upload store, hashed on the way: an upload is
never whole in memory, and one larger than the limit is cut off (413) as soon
as it passes it, its temporary file removed. The client's file name only ever
gives the archive key (checked by :mod:`event_pipeline.intake.keys`); the
stored file is named by its SHA-256, ``<upload store>/<sha256>.zip``, so the
same bytes uploaded twice are one file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from event_pipeline.api.errors import ApiError

FILE_FIELD = "file"
KEY_FIELD = "key"
MAX_FIELD_BYTES = 1024  # a text field (the key) longer than this is refused
MAX_PARTS = 8
OVERHEAD_BYTES = 64 * 1024  # multipart headers and boundaries on top of the file itself


@dataclass
class Upload:
    """A received archive: ``path`` (a temporary file of the store until :meth:`keep`), its size in
    bytes and SHA-256, the client's file name (for the key only) and the ``key`` form field."""

    path: Path
    size: int
    sha256: str
    filename: str | None
    key: str | None

    def keep(self) -> Path:
        """Move it to its lasting name, ``<store>/<sha256>.zip`` (atomic; the same bytes make the same file)."""
        final = self.path.with_name(f"{self.sha256}.zip")
        os.replace(self.path, final)
        self.path = final
        return final

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class _Parts:
    """What the parser's callbacks saw, acted on between chunks (callbacks cannot await)."""

    out: IO[bytes]
    limit: int
    digest: Any = field(default_factory=hashlib.sha256)  # a hashlib sha256 object
    size: int = 0
    parts: int = 0
    filename: str | None = None
    files: int = 0
    fields: dict[str, bytearray] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    disposition: bytes = b""
    current: str | None = None
    is_file: bool = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.begin,
            "on_header_field": lambda data, start, end: self._header(data[start:end], name=True),
            "on_header_value": lambda data, start, end: self._header(data[start:end], name=False),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.data,
        }

    def begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(400, f"too many form fields (at most {MAX_PARTS})")
        self.disposition, self.current, self.is_file = b"", None, False

    def _header(self, chunk: bytes, name: bool) -> None:
        if len(self.header_name) + len(self.header_value) + len(chunk) > MAX_FIELD_BYTES * 4:
            raise ApiError(400, "a form part's header is too long")
        if name:
            self.header_name += chunk
        else:
            self.header_value += chunk

    def header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.current = name
        self.is_file = name == FILE_FIELD
        if self.is_file:
            self.files += 1
            if self.files > 1:
                raise ApiError(400, f"one archive per request: more than one {FILE_FIELD!r} field")
            raw = options.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None

    def data(self, chunk: bytes, start: int, end: int) -> None:
        piece = chunk[start:end]
        if self.is_file:
            self.size += len(piece)
            if self.size > self.limit:
                raise ApiError(
                    413, f"the archive is larger than {self.limit} bytes (EVENT_PIPELINE_API_MAX_UPLOAD_BYTES)"
                )
            self.digest.update(piece)
            self.out.write(piece)
        elif self.current == KEY_FIELD:
            value = self.fields.setdefault(KEY_FIELD, bytearray())
            value += piece
            if len(value) > MAX_FIELD_BYTES:
                raise ApiError(400, f"the {KEY_FIELD!r} field is longer than {MAX_FIELD_BYTES} bytes")
        # other fields are read past and dropped; the whole body is bounded by the caller


def _boundary(request: Request) -> bytes:
    kind, params = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(415, f"send the archive as multipart/form-data, in the field {FILE_FIELD!r}")
    return params[b"boundary"]


async def receive(request: Request, store: Path, limit: int) -> Upload:
    """Stream the request's ``file`` part into ``store``; raises :class:`ApiError` (400, 413, 415) and then
    leaves no file behind. The result is a temporary file until :meth:`Upload.keep`."""
    boundary = _boundary(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + OVERHEAD_BYTES:
        raise ApiError(413, f"the upload is larger than {limit} bytes (EVENT_PIPELINE_API_MAX_UPLOAD_BYTES)")
    store.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=store, prefix=".upload-", suffix=".part")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            parts = _Parts(out, limit)
            parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]  # a dict of callbacks, as documented
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit + OVERHEAD_BYTES:
                    raise ApiError(
                        413, f"the upload is larger than {limit} bytes (EVENT_PIPELINE_API_MAX_UPLOAD_BYTES)"
                    )
                parser.write(chunk)
            parser.finalize()
        upload = _checked(path, parts)
    except ClientDisconnect:
        path.unlink(missing_ok=True)
        raise ApiError(400, "the client went away during the upload") from None
    except ApiError:
        path.unlink(missing_ok=True)
        raise
    except Exception as exc:  # a malformed body (the parser's own errors)
        path.unlink(missing_ok=True)
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    return upload


def _checked(path: Path, parts: _Parts) -> Upload:
    if parts.files == 0:
        raise ApiError(400, f"no archive: send the zip in the multipart field {FILE_FIELD!r}")
    if parts.size == 0:
        raise ApiError(400, "the archive is empty")
    if not zipfile.is_zipfile(path):  # its central directory is readable; the import checks everything else
        raise ApiError(400, "the upload is not a zip archive")
    raw_key = parts.fields.get(KEY_FIELD)
    key = raw_key.decode("utf-8", "replace").strip() if raw_key is not None else None
    return Upload(path, parts.size, parts.digest.hexdigest(), parts.filename, key or None)
