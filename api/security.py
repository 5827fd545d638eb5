"""Who may call what: API keys held as SHA-256 hashes, roles, the route policy, rate limits.

Keys are random 256-bit tokens, so an unsalted SHA-256 is a sound at-rest form (as for
GitHub tokens): the service hashes every configured key when it loads them, keeps only the
hashes, and compares a presented key's hash against every stored hash in constant time.

The policy is one table from (method, route template) to the roles allowed; a route that
is not in the table is denied to everyone (fail closed), and a test checks that every route
of the real app is listed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    ANALYST = "analyst"
    ORIGINATION = "origination"
    ADMIN = "admin"


# Keys made by `generate_api_key(demo=True)` carry this prefix so production can refuse them.
DEMO_KEY_PREFIX = "rgdemo_"
KEY_PREFIX = "rgk_"
HASH_PREFIX = "sha256:"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# A key id is a prefix of the key's SHA-256: enough to tell keys apart in logs and the audit
# trail, far too short to help anyone guess a 256-bit key.
KEY_ID_HEX = 12


class KeyConfigError(ValueError):
    """The configured keys cannot be read; the message names the entry."""


def generate_api_key(*, demo: bool = False) -> str:
    """A new random API key (256 bits, URL-safe).

    Example:
        >>> key = generate_api_key(demo=True)
        >>> key.startswith("rgdemo_") and len(key) > 40
        True
    """
    return (DEMO_KEY_PREFIX if demo else KEY_PREFIX) + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The at-rest form of a key: its SHA-256 in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_file_line(key: str, role: Role) -> str:
    """The keys-file line for a key: `sha256:<hex>=role`."""
    return f"{HASH_PREFIX}{hash_api_key(key)}={role.value}"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the key's id (never the key) and its role."""

    key_id: str
    role: Role


ANONYMOUS_ADMIN = Principal(key_id="auth-disabled", role=Role.ADMIN)


def _parse_role(text: str, where: str) -> Role:
    try:
        return Role(text.strip())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise KeyConfigError(f"{where}: unknown role {text.strip()!r} (one of {allowed})") from None


def _parse_entry(entry: str, where: str) -> tuple[str, Role, bool]:
    """`key=role` or `sha256:<hex>=role` → (hash, role, was_plaintext)."""
    credential, sep, role_text = entry.rpartition("=")
    credential = credential.strip()
    if not sep or not credential:
        raise KeyConfigError(f"{where}: expected key=role or sha256:<hex>=role")
    role = _parse_role(role_text, where)
    if credential.startswith(HASH_PREFIX):
        digest = credential[len(HASH_PREFIX) :].lower()
        if not _HEX64.fullmatch(digest):
            raise KeyConfigError(f"{where}: sha256: must be followed by 64 hex digits")
        return digest, role, False
    return hash_api_key(credential), role, True


@dataclass(frozen=True, slots=True)
class LoadedKeys:
    """Keys as loaded: hashes with their roles, and facts the settings check needs."""

    hashes: dict[str, Role]
    plaintext: int
    demo: int
    short: int


# Plaintext keys shorter than this are refused in production (generated keys have ~47).
MIN_PRODUCTION_KEY_LENGTH = 32


def load_keys(inline: str | None, keys_file: Path | None) -> LoadedKeys:
    """Hash the keys of `RISKGRAPH_API_KEYS` (`key=role,key=role`) and of a keys file (one
    `sha256:<hex>=role` or `key=role` a line, `#` comments); the plaintext is not kept."""
    hashes: dict[str, Role] = {}
    plaintext = demo = short = 0
    entries: list[tuple[str, str]] = []
    if inline:
        entries += [
            (e, f"RISKGRAPH_API_KEYS entry {i + 1}")
            for i, e in enumerate(inline.split(","))
            if e.strip()
        ]
    if keys_file is not None:
        try:
            lines = keys_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise KeyConfigError(f"cannot read keys file {keys_file}: {exc}") from exc
        entries += [
            (line, f"{keys_file}:{n}")
            for n, line in enumerate(lines, start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    for entry, where in entries:
        digest, role, was_plaintext = _parse_entry(entry, where)
        if digest in hashes and hashes[digest] != role:
            raise KeyConfigError(f"{where}: the same key is configured with two roles")
        hashes[digest] = role
        if was_plaintext:
            plaintext += 1
            key = entry.rpartition("=")[0].strip()
            demo += key.startswith(DEMO_KEY_PREFIX)
            short += len(key) < MIN_PRODUCTION_KEY_LENGTH
    return LoadedKeys(hashes=hashes, plaintext=plaintext, demo=demo, short=short)


class KeyRing:
    """Configured keys as hashes; `authenticate` looks a presented key up in constant time."""

    def __init__(self, hashes: Mapping[str, Role]) -> None:
        self._entries = [(bytes.fromhex(h), h[:KEY_ID_HEX], r) for h, r in hashes.items()]

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        # Compare against every key, never stopping early: the time taken says nothing about
        # which key (if any) matched.
        for stored, key_id, role in self._entries:
            if hmac.compare_digest(stored, digest):
                found = Principal(key_id=key_id, role=role)
        return found


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer <key>`."""
    bearer: str | None = None
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
    return bearer


# --- the route policy ----------------------------------------------------------------------
ALL_ROLES = frozenset(Role)
READERS = frozenset({Role.ANALYST, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})
# Routes anyone may call without a key: probes, and the UI shell and API docs, which hold
# no bank data (the UI asks for a key before it reads any).
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/"),
        ("GET", "/static"),  # the mount of the UI's assets
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
    }
)

# (method, route template) → the roles allowed. A route neither here nor in PUBLIC_ROUTES
# is denied to everyone (fail closed). HEAD follows GET.
ROUTE_POLICY: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/metrics"): ADMINS,
    # origination officers: the check, and looking up the borrower
    ("POST", "/v1/origination/check"): frozenset({Role.ORIGINATION, Role.ADMIN}),
    ("GET", "/v1/entities/{entity_id}"): ALL_ROLES,
    # analysts read everything, reports included
    ("GET", "/v1/search"): READERS,
    ("GET", "/v1/entities/{entity_id}/controllers"): READERS,
    ("GET", "/v1/entities/{entity_id}/controlled"): READERS,
    ("GET", "/v1/entities/{entity_id}/ubo"): READERS,
    ("GET", "/v1/entities/{entity_id}/group"): READERS,
    ("GET", "/v1/entities/{entity_id}/guarantees"): READERS,
    ("GET", "/v1/entities/{entity_id}/related-parties"): READERS,
    ("GET", "/v1/entities/{entity_id}/ring"): READERS,
    ("GET", "/v1/entities/{entity_id}/neighbourhood"): READERS,
    ("GET", "/v1/explain"): READERS,
    ("GET", "/v1/rings"): READERS,
    ("GET", "/v1/rings/{ring_id}"): READERS,
    ("GET", "/v1/alerts"): READERS,
    ("GET", "/v1/reports/large-exposures"): READERS,
    ("GET", "/v1/reports/entity/{entity_id}.html"): READERS,
    ("GET", "/v1/reports/entity/{entity_id}.pdf"): READERS,
    # admins: jobs that write the store, and the audit trail
    ("POST", "/v1/jobs/ingest"): ADMINS,
    ("POST", "/v1/jobs/reason"): ADMINS,
    ("POST", "/v1/jobs/rings"): ADMINS,
    ("GET", "/v1/jobs/{job_id}"): ADMINS,
    ("GET", "/v1/audit"): ADMINS,
}

# Decisions (credit) wait for their audit record to be committed before they are served.
DECISION_ROUTES = frozenset({("POST", "/v1/origination/check")})


def is_public(method: str, template: str) -> bool:
    """Whether a route is open without a key."""
    return ("GET" if method == "HEAD" else method, template) in PUBLIC_ROUTES


def allowed_roles(method: str, template: str) -> frozenset[Role] | None:
    """The roles allowed on a route; None when the route is not in the policy (deny)."""
    return ROUTE_POLICY.get(("GET" if method == "HEAD" else method, template))


class RateLimiter:
    """A token bucket per key: `rate` requests a second on average, bursts up to `burst`.

    Used from the event loop only (one thread), so it needs no lock.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key_id: str, now: float | None = None) -> float:
        """Take one token; 0.0 when allowed, else the seconds until a token is free."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / self.rate


def retry_after_header(wait_seconds: float) -> str:
    """A Retry-After value in whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_seconds)))
