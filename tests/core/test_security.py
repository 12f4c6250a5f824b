"""Password hashing, access tokens and client addresses."""

from __future__ import annotations

import time

import jwt
import pytest

from sextant.core.security import (
    InvalidToken,
    Passwords,
    client_ip,
    create_access_token,
    decode_access_token,
    hash_token,
    random_alphanumeric,
    tokens_equal,
)

SECRET = "s" * 48


@pytest.fixture(scope="module")
def hasher() -> Passwords:
    return Passwords(time_cost=1, memory_kib=1024)


def test_passwords_use_argon2id_with_a_salt(hasher: Passwords) -> None:
    first, second = hasher.hash("correct-horse-7"), hasher.hash("correct-horse-7")
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert hasher.verify(first, "correct-horse-7")
    assert not hasher.verify(first, "correct-horse-8")
    assert not hasher.verify("not-a-hash", "correct-horse-7")


def test_rehash_when_the_cost_changes(hasher: Passwords) -> None:
    weak = hasher.hash("correct-horse-7")
    assert not hasher.needs_rehash(weak)
    assert Passwords(time_cost=2, memory_kib=1024).needs_rehash(weak)


def test_access_tokens_round_trip() -> None:
    issued = create_access_token(
        subject="user-1", secret=SECRET, ttl_seconds=60, claims={"pwv": "abc"}
    )
    assert issued.expires_in == 60
    claims = decode_access_token(issued.token, secret=SECRET)
    assert claims["sub"] == "user-1"
    assert claims["pwv"] == "abc"
    assert claims["typ"] == "access"


def test_access_tokens_refuse_tampering_expiry_and_other_algorithms() -> None:
    token = create_access_token(subject="u", secret=SECRET, ttl_seconds=60).token
    with pytest.raises(InvalidToken, match="invalid"):
        decode_access_token(token, secret="x" * 48)
    with pytest.raises(InvalidToken, match="invalid"):
        decode_access_token(token[:-2] + "xx", secret=SECRET)
    now = int(time.time())
    expired = jwt.encode(
        {"iss": "sextant", "sub": "u", "typ": "access", "iat": now - 120, "exp": now - 60},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(expired, secret=SECRET)
    unsigned = jwt.encode(
        {"iss": "sextant", "sub": "u", "typ": "access", "iat": now, "exp": now + 60},
        key="",
        algorithm="none",
    )
    with pytest.raises(InvalidToken):
        decode_access_token(unsigned, secret=SECRET)
    no_issuer = jwt.encode({"sub": "u", "typ": "access", "iat": now, "exp": now + 60}, SECRET)
    with pytest.raises(InvalidToken):
        decode_access_token(no_issuer, secret=SECRET)


def test_token_hashing_helpers() -> None:
    assert hash_token("abc") == hash_token("abc")
    assert len(hash_token("abc")) == 64
    assert tokens_equal("abc", "abc")
    assert not tokens_equal("abc", "abd")
    value = random_alphanumeric(40)
    assert len(value) == 40
    assert value.isalnum()


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("10.0.0.5", None, [], "10.0.0.5"),
        ("10.0.0.5", "203.0.113.1", [], "10.0.0.5"),  # untrusted peer: header ignored
        ("10.0.0.5", "203.0.113.1", ["10.0.0.0/8"], "203.0.113.1"),
        ("10.0.0.5", "198.51.100.2, 203.0.113.1, 10.0.0.9", ["10.0.0.0/8"], "203.0.113.1"),
        ("10.0.0.5", "10.0.0.7", ["10.0.0.0/8"], "10.0.0.7"),
        (None, "203.0.113.1", ["10.0.0.0/8"], "unknown"),
        ("::1", "2001:db8::1", ["::1"], "2001:db8::1"),
    ],
)
def test_client_ip(
    peer: str | None, forwarded: str | None, trusted: list[str], expected: str
) -> None:
    assert client_ip(peer, forwarded, trusted) == expected
