"""Session tokens and access checks.

A session has one patient token (joins and streams) and any number of clinician tokens (view, reopen,
download). Tokens are 256-bit ``secrets.token_urlsafe`` strings handed out once in the links; the
store keeps only their SHA-256, compared in constant time. Every refusal looks the same from outside:
401 when no credential came, 403 otherwise, whether the session exists or not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import Enum
from typing import Protocol

from starlette.requests import HTTPConnection

MAX_TOKEN_CHARS = 128  # a token_urlsafe(32) is 43; anything much longer is not ours


class Role(str, Enum):
    PATIENT = "patient"
    CLINICIAN = "clinician"


class AccessDenied(Exception):
    """Raised by the checks; the app turns it into a bare 401/403 (or a WebSocket refusal)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_session_id() -> str:
    return secrets.token_urlsafe(12)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_from(conn: HTTPConnection) -> str | None:
    """The credential of a request: ``Authorization: Bearer`` header, else the ``token`` query value.

    Pages and WebSockets carry it in the query (links, browser WebSocket API); scripts use the header.
    """
    header = conn.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
    else:
        token = conn.query_params.get("token", "")
    return token or None


class TokenStore(Protocol):
    def token_hashes(self, session_id: str, role: str) -> list[str]: ...


class Gate:
    """Answers "may this request do that?" for every route."""

    def __init__(self, store: TokenStore, admin_key: str) -> None:
        self._store = store
        self._admin_key = admin_key.encode("utf-8")

    def check_admin(self, conn: HTTPConnection) -> None:
        token = token_from(conn)
        if token is None:
            raise AccessDenied(401)
        if not hmac.compare_digest(token.encode("utf-8"), self._admin_key):
            raise AccessDenied(403)

    def check(self, conn: HTTPConnection, session_id: str, *roles: Role) -> Role:
        """The role the request's token holds in ``session_id`` among ``roles``, else AccessDenied."""
        token = token_from(conn)
        if token is None:
            raise AccessDenied(401)
        for role in roles:
            if self.allows(session_id, token, role):
                return role
        raise AccessDenied(403)

    def allows(self, session_id: str, token: str, role: Role) -> bool:
        if len(token) > MAX_TOKEN_CHARS or len(session_id) > MAX_TOKEN_CHARS:
            return False
        digest = token_hash(token)
        # Compare against every hash of the role, found or not, so timing says nothing either way.
        ok = False
        for stored in self._store.token_hashes(session_id, role.value):
            ok |= hmac.compare_digest(digest, stored)
        return ok
