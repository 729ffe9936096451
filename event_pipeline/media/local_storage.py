"""Media stored in a local folder: ``<root>/<key>``, written to a temporary file, synced, then renamed.

Keys are checked (``storage.checked_key``) before any path is made from them, so
nothing outside the folder is ever touched. A killed write leaves a
``.tmp-<random>-<name>`` file beside its target, which :meth:`LocalStorage.remove_partial`
removes; listings skip such files. URLs are ``<base URL>/<key>`` (default base:
the folder's ``file://`` URI).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import IO
from urllib.parse import quote

from event_pipeline.media.storage import StorageError, checked_key, key_from_url, kill_point


def _unlink(path: Path) -> bool:
    """Delete a file; False if it was not there. Raises StorageError for any other failure."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot delete {path}: {exc.strerror or exc}") from exc
    return True


class LocalStorage:
    """A folder; objects are written to a temporary file, synced, then renamed into place."""

    kind = "local"

    def __init__(self, root: str | Path, base_url: str | None = None):
        self.root = Path(root).expanduser().resolve()
        self.base_url = (base_url or self.root.as_uri()).rstrip("/")

    def describe(self) -> str:
        return f"local folder {self.root}"

    def path(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key).split("/"))

    def url(self, key: str) -> str:
        return f"{self.base_url}/{quote(checked_key(key))}"

    def key_for_url(self, url: str) -> str | None:
        return key_from_url(url, self.base_url)

    def list(self, prefix: str) -> dict[str, int]:
        folder = self.root.joinpath(*[p for p in prefix.split("/") if p])
        found: dict[str, int] = {}
        if not folder.is_dir():
            return found
        for directory, _dirs, files in os.walk(folder):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                with contextlib.suppress(OSError):
                    found[key] = path.stat().st_size
        return found

    def put(self, key: str, data: IO[bytes], size: int, sha256: str, content_type: str | None) -> None:
        target = self.path(key)
        temp = target.with_name(f".tmp-{secrets.token_hex(6)}-{target.name}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as out:
                written = 0
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            kill_point("media-put")
            if written != size:
                raise StorageError(f"{target}: wrote {written} bytes, expected {size}")
            os.replace(temp, target)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()

    def delete(self, keys: Iterable[str]) -> int:
        deleted = 0
        for key in keys:
            path = self.path(key)
            if _unlink(path):
                deleted += 1
                self._prune(path.parent)
        return deleted

    def _prune(self, folder: Path) -> None:
        """Remove folders left empty, up to the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def remove_partial(self, keys: Iterable[str]) -> int:
        """Remove the temporary files a killed upload of these keys left (``.tmp-<random>-<name>``)."""
        removed = 0
        for key in keys:
            path = self.path(key)
            folder = path.parent
            if not folder.is_dir():
                continue
            removed += sum(_unlink(temp) for temp in folder.glob(f".tmp-*-{path.name}"))
            self._prune(folder)
        return removed

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()
