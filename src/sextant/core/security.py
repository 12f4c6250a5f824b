"""Security primitives: Argon2id passwords, signed access tokens, opaque secrets and their hashes.

Nothing here knows about users or projects; the domains decide what a token means.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

JWT_ALGORITHM = "HS256"
JWT_ISSUER = "sextant"
_ALPHANUMERIC = string.ascii_letters + string.digits


class Passwords:
    """Argon2id hashing; the cost is tunable so tests need not pay production prices."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65_536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verifying against this when an account does not exist keeps timing uniform.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


@lru_cache(maxsize=8)
def passwords(time_cost: int = 3, memory_kib: int = 65_536) -> Passwords:
    return Passwords(time_cost=time_cost, memory_kib=memory_kib)


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random token with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def random_alphanumeric(length: int) -> str:
    """Letters and digits only, so a double click selects the whole secret."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def hash_token(token: str) -> str:
    """SHA-256 hex digest. Enough for high-entropy secrets, which cannot be guessed offline."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def fingerprint(value: str, length: int = 16) -> str:
    """A short, stable digest of a value (used to bind access tokens to a password version)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:length]


class InvalidToken(Exception):
    """The access token is malformed, forged, of the wrong type or expired."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


def create_access_token(
    *, subject: str, secret: str, ttl_seconds: int, claims: dict[str, Any] | None = None
) -> IssuedToken:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": JWT_ISSUER,
        "sub": subject,
        "typ": "access",
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if claims:
        payload.update(claims)
    return IssuedToken(jwt.encode(payload, secret, algorithm=JWT_ALGORITHM), ttl_seconds)


def decode_access_token(token: str, *, secret: str) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            issuer=JWT_ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("access token expired; refresh it") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid access token") from exc
    if payload.get("typ") != "access":
        raise InvalidToken("invalid access token")
    return payload


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: list[str]) -> str:
    """The caller's address: the peer, or the right-most untrusted `X-Forwarded-For` hop
    when the peer is a trusted proxy."""
    if not peer:
        return "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


def _is_trusted(address: str, trusted: list[str]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address in trusted
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
