"""Where a run of the import may read archives from: the configured archive roots.

The Dagster webserver has no login, and its launchpad lets whoever reaches
it set ``ops.archive.config.path`` (or the bulk job's ``paths``) to any file
on the server. So every import run reads archives only from under
``EVENT_PIPELINE_ARCHIVE_ROOTS``: a comma-separated list of folders, single
files, or ``s3://bucket/prefix`` URLs (``s3://`` alone: any bucket the
credentials reach). Unset, the roots
are the drop folder (or the S3 drop prefix), the API's upload store and the
bundled example archive.

A local path is compared after resolving symbolic links and ``..``, so a
link inside a root that points outside it is refused too. The command line
is the one exception (:func:`unrestricted`): whoever runs it can read the
file anyway, and ``event-pipeline import path/to/any.zip`` must keep working.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from event_pipeline import settings
from event_pipeline.intake import s3

ROOTS_ENV = "EVENT_PIPELINE_ARCHIVE_ROOTS"
SEPARATOR = ","  # not os.pathsep: an s3:// URL has a colon
_unrestricted = 0  # >0 while the command line runs the job in its own process


def upload_dir(create: bool = False) -> Path:
    """``EVENT_PIPELINE_UPLOAD_DIR``, else ``<data dir>/uploads``: where the HTTP API stores archives."""
    configured = settings.current().upload_dir
    path = configured.expanduser() if configured else settings.data_dir(create) / "uploads"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def default_roots() -> list[str]:
    """The drop folder or S3 drop prefix, the upload store, the bundled example (not created here)."""
    current = settings.current()
    drop = current.drop_url or str(current.drop_dir.expanduser().resolve())
    return [drop, str(upload_dir()), str(settings.example_archive())]


def archive_roots() -> list[str]:
    """The configured roots (``EVENT_PIPELINE_ARCHIVE_ROOTS``), else :func:`default_roots`."""
    configured = settings.current().archive_roots
    if configured is None or not configured.strip():
        return default_roots()
    return [part.strip() for part in configured.split(SEPARATOR) if part.strip()]


def _under_s3(url: str, root: str) -> bool:
    prefix = root if root.endswith("/") else root + "/"
    return url.startswith(prefix) and ".." not in url[len(prefix) :].split("/")


def _under_local(path: str, root: str) -> bool:
    target = Path(path).expanduser().resolve()
    base = Path(root).expanduser().resolve()
    return target == base or target.is_relative_to(base)


def refusal(path: str) -> str | None:
    """Why a run may not read ``path`` (a local path or an ``s3://`` URL), or None if it may."""
    if _unrestricted:
        return None
    roots = archive_roots()
    if s3.is_s3(path):
        allowed = any(_under_s3(path, root) for root in roots if s3.is_s3(root))
    else:
        allowed = any(_under_local(path, root) for root in roots if not s3.is_s3(root))
    if allowed:
        return None
    return (
        f"archive {path} is outside the archive roots ({', '.join(roots)}); "
        f"put it in the drop folder, upload it through the API, or add its folder to {ROOTS_ENV}"
    )


@contextlib.contextmanager
def unrestricted() -> Iterator[None]:
    """Lift the check for this process while the block runs: the command line's in-process job only.

    Run workers launched by the daemon are other processes, so nothing a
    webserver user starts ever runs inside this block.
    """
    global _unrestricted
    _unrestricted += 1
    try:
        yield
    finally:
        _unrestricted -= 1
