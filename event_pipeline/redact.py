"""Passwords out of everything shown: one masking function for URLs, DSNs and the messages quoting them.

The database URL and the SMTP URL may carry a password in any of the forms
their drivers take; every log line, stored error and printed result that
could quote one goes through :func:`mask` first.
"""

from __future__ import annotations

import re

MASK = "***"

# The password of a URL's user info: ``scheme://user:password@host``. A raw
# ``@``, ``/`` or ``?`` in a password makes the URL ambiguous (SQLAlchemy and
# libpq split it differently), so everything up to the last ``@`` of the
# URL is masked: at worst a host is hidden too, never a piece of password shown.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*):(?P<secret>\S*)@")
# ``password=...`` as a URL query parameter (``?password=``, ``&password=``)
# or a libpq keyword/value DSN entry (``host=db password=secret``, also
# ``password = 'with spaces'``); ``sslpassword`` and ``passwd`` too.
_PARAMETER = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_])(?:ssl)?(?:password|passwd|pwd)\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'?|[^\s&;'\"]*)",
    re.IGNORECASE,
)


def mask(text: str | None) -> str:
    """``text`` with every password in it replaced by ``***``; ``""`` for None.

    Takes a URL (``postgresql://user:pw@host/db``, ``...?password=pw``,
    ``postgresql:///db?host=/run&password=pw``, ``smtps://user:pw@host``), a
    libpq keyword/value DSN (``host=db password=pw``), or any message
    quoting one of them. User names, hosts and other parameters are kept.
    """
    if not text:
        return ""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PARAMETER.sub(lambda m: f"{m['head']}{MASK}" if m["secret"] else m[0], text)
