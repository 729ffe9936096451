"""The types media are served as: an allow-list of extensions, nothing a browser would run or render as a page.

An object's served type comes from :data:`SERVED_TYPES` (images, audio, video,
PDF, slides): :func:`served_type` gives a file name's ``(key suffix, content
type)``; anything else (HTML, SVG, scripts, unknown) is stored without an
extension and, on S3, as ``application/octet-stream`` (:data:`OCTET_STREAM`), so a
media host never serves an archive's markup or script as such.
"""

from __future__ import annotations

from pathlib import PurePosixPath

OCTET_STREAM = "application/octet-stream"

# The extensions kept in keys, and the type each object is served as. Nothing that a
# browser would run or render as a page: SVG and HTML can carry scripts.
SERVED_TYPES = {
    **dict.fromkeys((".jpg", ".jpeg"), "image/jpeg"),
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".ico": "image/vnd.microsoft.icon",
    **dict.fromkeys((".tif", ".tiff"), "image/tiff"),
    ".mp3": "audio/mpeg",
    **dict.fromkeys((".ogg", ".oga"), "audio/ogg"),
    ".opus": "audio/opus",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".flac": "audio/flac",
    ".weba": "audio/webm",
    **dict.fromkeys((".mp4", ".m4v"), "video/mp4"),
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    **dict.fromkeys((".mpg", ".mpeg"), "video/mpeg"),
    ".pdf": "application/pdf",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".ppt": "application/vnd.ms-powerpoint",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".key": "application/vnd.apple.keynote",
}
EXTENSION_OF_TYPE = {t: ext for ext, t in reversed(list(SERVED_TYPES.items()))}  # the first extension per type


def served_type(name: str, declared: str | None = None) -> tuple[str, str]:
    """(key suffix, content type) of a file called ``name``: an allow-listed extension keeps its type;
    else ``declared`` (a fetched file's Content-Type) if it is an allow-listed type; else no suffix and
    ``application/octet-stream``."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in SERVED_TYPES:
        return suffix, SERVED_TYPES[suffix]
    declared = (declared or "").split(";")[0].strip().lower()
    if declared in EXTENSION_OF_TYPE:
        return EXTENSION_OF_TYPE[declared], declared
    return "", OCTET_STREAM
