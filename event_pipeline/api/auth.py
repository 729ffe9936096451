"""Tokens: HS256 JWTs (PyJWT) signed with the configured secret; no user table.

A token's ``email`` claim (else ``sub``) is the user: it owns the imports it
starts and receives their result by email. ``Authorization: JWT <token>``
(the reference server's scheme) and ``Authorization: Bearer <token>`` are both
taken. A token without an expiry is refused, so none is valid forever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from fastapi import Security
from fastapi.security import APIKeyHeader

from event_pipeline.api import config
from event_pipeline.api.errors import ApiError

ALGORITHM = "HS256"
SCHEMES = ("jwt", "bearer")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="event-pipeline"'}


@dataclass(frozen=True)
class User:
    """Who a valid token names: ``id`` is its email (else its ``sub``); ``email`` may be None."""

    id: str
    email: str | None


def make_token(email: str, secret: str, hours: int, now: float | None = None) -> str:
    """A token for ``email`` (``sub`` and ``email`` claims), valid ``hours`` hours from ``now`` (epoch s)."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": email, "email": email, "iat": issued, "exp": issued + hours * 3600}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _refuse(message: str) -> ApiError:
    return ApiError(401, message, headers=CHALLENGE)


def user_from_header(header: str | None, secret: str | None) -> User:
    """The user of an ``Authorization`` header; raises :class:`ApiError` 401 saying why not."""
    if secret is None:
        raise ApiError(503, "no token secret is configured (EVENT_PIPELINE_JWT_SECRET); start the API with make serve")
    if not header:
        raise _refuse("missing Authorization header (JWT <token> or Bearer <token>)")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in SCHEMES or not token.strip():
        raise _refuse("Authorization must be 'JWT <token>' or 'Bearer <token>'")
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError:
        raise _refuse("token expired") from None
    except jwt.InvalidSignatureError:
        raise _refuse("token signature is not valid") from None
    except jwt.InvalidTokenError as exc:
        raise _refuse(f"invalid token: {exc}") from None
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    ident = email or subject
    if not ident:
        raise _refuse("the token names no user (no email or sub claim)")
    return User(ident, email)


# Declared as an API key header so /docs offers an "Authorize" box taking "JWT <token>" or "Bearer <token>".
AUTHORIZATION = APIKeyHeader(
    name="Authorization", auto_error=False, scheme_name="token", description="JWT <token> or Bearer <token>"
)


def current_user(authorization: str | None = Security(AUTHORIZATION)) -> User:
    """FastAPI dependency: the request's user, or 401."""
    return user_from_header(authorization, config.jwt_secret())
