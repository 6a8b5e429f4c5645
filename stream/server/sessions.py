"""Session tokens and access checks.

A session has one patient token (joins and streams) and any number of clinician tokens (view, reopen,
download). Tokens are 256-bit ``secrets.token_urlsafe`` strings handed out once in the links; the
store keeps only their SHA-256, compared in constant time. Every refusal looks the same from outside:
401 when no credential came, 403 otherwise, whether the session exists or not. A patient token
opens nothing once its session has ended (the clinic key can reopen it); a clinician token opens
nothing once it is older than the optional link lifetime (``serve --link-ttl``; the clinic key
issues a new one). A client address that sent too many wrong credentials gets 429 for everything
until its window has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
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
    def tokens(self, session_id: str, role: str) -> list[tuple[str, float]]: ...

    def session_status(self, session_id: str) -> str | None: ...


class FailureLimit:
    """Wrong credentials per client address in a sliding window; over the limit the address waits.

    Memory is bounded: at most ``max_addresses`` addresses are remembered, the least recent go first.
    """

    def __init__(
        self, limit: int, window_s: float, max_addresses: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        cutoff = self._clock() - self.window_s
        while times and times[0] < cutoff:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def blocked(self, address: str) -> bool:
        times = self._recent(address)
        return times is not None and len(times) >= self.limit

    def failed(self, address: str) -> None:
        times = self._recent(address) or deque()
        times.append(self._clock())
        self._failures[address] = times
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client is not None else "unknown"


def _matches(token: str, issued: Iterable[tuple[str, float]], oldest: float) -> bool:
    """Whether ``token``'s hash is among ``issued`` (hash, issue time) and issued at ``oldest`` or later.

    Compares against every hash, found or not, and judges every token's age, so timing says nothing
    about a wrong, an expired or a right token.
    """
    digest = token_hash(token)
    ok = False
    for stored, at in issued:
        ok |= hmac.compare_digest(digest, stored) & (at >= oldest)
    return ok


class Gate:
    """Answers "may this request do that?" for every route."""

    def __init__(
        self,
        store: TokenStore,
        admin_key: str,
        failures: FailureLimit | None = None,
        link_ttl_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._admin_key = admin_key.encode("utf-8")
        self.failures = failures or FailureLimit(limit=30, window_s=60.0)
        self.link_ttl_s = link_ttl_s  # clinician tokens older than this open nothing; None: no expiry
        self._clock = clock  # wall clock: tokens are stamped with time.time() when issued

    def _token(self, conn: HTTPConnection) -> str:
        if self.failures.blocked(client_address(conn)):
            raise AccessDenied(429)  # even a right token: the answer must not confirm a guess
        token = token_from(conn)
        if token is None:
            raise AccessDenied(401)
        return token

    def _refuse(self, conn: HTTPConnection) -> AccessDenied:
        self.failures.failed(client_address(conn))
        return AccessDenied(403)

    def check_admin(self, conn: HTTPConnection) -> None:
        token = self._token(conn)
        if not hmac.compare_digest(token.encode("utf-8"), self._admin_key):
            raise self._refuse(conn)

    def check_admin_or(self, conn: HTTPConnection, issued: Callable[[], Iterable[tuple[str, float]]]) -> None:
        """The clinic key, or a token among ``issued()`` (hash, issue time) younger than the link lifetime."""
        token = self._token(conn)
        if hmac.compare_digest(token.encode("utf-8"), self._admin_key):
            return
        oldest = -math.inf if self.link_ttl_s is None else self._clock() - self.link_ttl_s
        if len(token) > MAX_TOKEN_CHARS or not _matches(token, issued(), oldest):
            raise self._refuse(conn)

    def check(self, conn: HTTPConnection, session_id: str, *roles: Role, ended_ok: bool = False) -> Role:
        """The role the request's token holds in ``session_id`` among ``roles``, else AccessDenied.

        ``ended_ok``: a patient token of an ended session still counts (hanging up twice is harmless).
        """
        token = self._token(conn)
        for role in roles:
            if self.allows(session_id, token, role, ended_ok=ended_ok):
                return role
        raise self._refuse(conn)

    def allows(self, session_id: str, token: str, role: Role, ended_ok: bool = False) -> bool:
        if len(token) > MAX_TOKEN_CHARS or len(session_id) > MAX_TOKEN_CHARS:
            return False
        # Patient links end with their session instead (below); clinician links may be shared on.
        oldest = -math.inf if self.link_ttl_s is None or role is not Role.CLINICIAN else self._clock() - self.link_ttl_s
        ok = _matches(token, self._store.tokens(session_id, role.value), oldest)
        if ok and role is Role.PATIENT and not ended_ok:
            # A patient link is for one sitting: once the session ended it streams and edits nothing.
            ok = self._store.session_status(session_id) != "ended"
        return ok

    def expires_at(self, session_id: str, token: str) -> float | None:
        """When an accepted clinician token stops working (wall clock); None: never.

        An open dashboard is closed then, so a link's lifetime bounds what it shows, not only how
        long it can be opened.
        """
        if self.link_ttl_s is None:
            return None
        digest = token_hash(token)
        issued = [
            t
            for stored, t in self._store.tokens(session_id, Role.CLINICIAN.value)
            if hmac.compare_digest(digest, stored)
        ]
        return issued[0] + self.link_ttl_s if issued else None
