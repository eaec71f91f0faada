"""Who may write, and who may read: the policies, apart from HTTP.

Writes (every request but a ``GET`` or ``HEAD``) follow a :class:`WritePolicy`:

* no write token configured: a write is accepted from a loopback peer (``127.0.0.0/8``,
  ``::1``) only, so that a sidecar needs no configuration; any other peer is refused, 403
  ``forbidden``, with a message that says how to allow it;
* write tokens configured (``auth.write_tokens_file``, ``auth.write_tokens``): every write needs
  ``Authorization: Bearer <token>``, from loopback too; none or an unknown one is 401
  ``unauthorized``, and a token allowed some models only, writing another, 403 ``forbidden``.

Reads (``/metrics``, the status pages, ``/docs``) follow a :class:`ReadPolicy`: open, unless
basic-auth users (``basic_auth_users`` of the web config) or read tokens
(``auth.metrics_tokens_file``, ``auth.metrics_tokens``) are configured; then a read needs one of
them, else 401 ``unauthorized``. Which request is which is :mod:`exporter.api.security`'s.

Tokens are compared in constant time: the SHA-256 digest of the token presented is compared with
:func:`hmac.compare_digest` to the digest of every configured token, all of them whatever
matched, so neither which token matched nor (the digests all being 32 bytes) the length of any
leaks through the time taken. A refusal never sends the credentials back.

bcrypt is slow by design (~70 ms at cost 10): as exporter-toolkit does, a successful check is
remembered for :data:`CACHE_SECONDS`, keyed by the SHA-256 of the user and password (the
password itself is never kept), at most :data:`CACHE_SIZE` of them; failures are not
remembered. bcrypt runs one check at a time (a flood of wrong passwords costs one core at most,
as in exporter-toolkit), and an unknown user is checked against a dummy hash, so the time taken
does not tell which users exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import bcrypt

from exporter.config import AuthSettings
from exporter.errors import ConfigError, Reason, RejectedInput
from exporter.names import name_problem

#: Seconds a successful basic-auth check is remembered, and how many are.
CACHE_SECONDS: Final = 60.0
CACHE_SIZE: Final = 64

#: How a write is allowed from another peer, or with a token: the end of every refusal.
HOW_TO_ALLOW: Final = (
    "configure a write token (auth.write_tokens_file, or MODEL_EXPORTER_AUTH__WRITE_TOKENS) and "
    "send it as 'Authorization: Bearer <token>'"
)

_TOKEN = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # visible ASCII but the comma
_COMMENT = re.compile(r"(?:^|\s)#.*")  # '#' at the start or after a space, to the line's end


def is_loopback(host: str | None) -> bool:
    """Whether a peer address is a loopback one (an IPv4-mapped IPv6 address counts as its
    IPv4 address); ``None`` (no address) and names are not.

    >>> is_loopback("127.0.0.5"), is_loopback("::1"), is_loopback("::ffff:127.0.0.1")
    (True, True, True)
    >>> is_loopback("10.0.0.5"), is_loopback("localhost"), is_loopback(None)
    (False, False, False)
    """
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_local(peer: str | None, local: str | None) -> bool:
    """Whether a connection is from this machine to its loopback: the peer is a loopback
    address, and so is the connection's local end when it is an address at all. A proxy on the
    same host or pod (a service mesh's sidecar: Istio connects from 127.0.0.6 to the pod's own
    address) relays other machines' requests from loopback, but to a non-loopback address.

    >>> is_local("127.0.0.1", "127.0.0.1"), is_local("127.0.0.6", "10.1.2.3")
    (True, False)
    >>> is_local("::1", None), is_local("127.0.0.1", "testserver")
    (True, True)
    """
    if not is_loopback(peer):
        return False
    try:
        ipaddress.ip_address(local or "")
    except ValueError:
        return True  # no address (a test transport): the peer decides
    return is_loopback(local)


def _relayed(peer: str | None, local: str | None) -> str:
    """How a refused loopback peer is described: relayed by a proxy on this host."""
    if not is_loopback(peer):
        return ""
    return f" to {local}, a non-loopback address (a proxy on this host relays it)"


def _digest(secret: str | bytes) -> bytes:
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).digest()


@dataclass(frozen=True)
class Token:
    """One configured bearer token (its digest only) and the models it may write."""

    digest: bytes
    models: frozenset[str] | None  # None: every model
    origin: str  # where it was configured, for messages: "auth.write_tokens_file line 3"


def parse_tokens(text: str, key: str, *, scoped: bool) -> list[Token]:
    """The tokens of a token file: one a line, with ``scoped`` optionally followed by spaces and
    the comma-separated models it may write (``tok-abc fraud,churn``); ``#`` at the start of a
    line or after a space starts a comment; blank lines are skipped.

    Raises a one-line :class:`ConfigError` naming ``key`` and the line.

    >>> [sorted(t.models or []) for t in parse_tokens("a # all\\nb fraud, churn\\n", "k",
    ...                                              scoped=True)]
    [[], ['churn', 'fraud']]
    """
    tokens = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        where = f"{key} line {number}"
        secret, _, rest = line.partition(" ") if " " in line else line.partition("\t")
        if not _TOKEN.fullmatch(secret):
            raise ConfigError(
                f"config key '{key}': line {number}: a token is visible ASCII without a comma"
            )
        models: frozenset[str] | None = None
        if rest.strip():
            if not scoped:
                raise ConfigError(
                    f"config key '{key}': line {number}: one token a line, nothing after it"
                )
            models = frozenset(_models(rest, key, number))
        tokens.append(Token(_digest(secret), models, where))
    return tokens


def _models(text: str, key: str, number: int) -> Iterable[str]:
    for name in (part.strip() for part in text.split(",")):
        problem = "it is empty" if not name else name_problem(name)
        if problem is not None:
            raise ConfigError(
                f"config key '{key}': line {number}: {name!r} is not a model name: {problem}"
            )
        yield name


def read_tokens(path: Path, key: str, *, scoped: bool) -> list[Token]:
    """The tokens in the file at ``path`` (:func:`parse_tokens`); a file that cannot be read or
    holds none is a one-line :class:`ConfigError` naming ``key``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8"
        raise ConfigError(f"config key '{key}': cannot read {str(path)!r}: {why}") from None
    tokens = parse_tokens(text, key, scoped=scoped)
    if not tokens:
        raise ConfigError(f"config key '{key}': {str(path)!r} holds no token")
    return tokens


def listed_tokens(secrets: Iterable[str], key: str) -> list[Token]:
    """Tokens for every model, listed in the settings (or their environment variable)."""
    return [Token(_digest(s), None, f"{key} item {i}") for i, s in enumerate(secrets, 1)]


class Tokens:
    """Configured bearer tokens; :meth:`find` compares in constant time.

    A token configured twice is a :class:`ConfigError` (which of its scopes would hold?).
    """

    def __init__(self, tokens: Iterable[Token]) -> None:
        self._tokens = list(tokens)
        seen: dict[bytes, str] = {}
        for token in self._tokens:
            if token.digest in seen:
                raise ConfigError(
                    f"the token of {token.origin} is the token of {seen[token.digest]}: "
                    "each token once"
                )
            seen[token.digest] = token.origin

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def scoped(self) -> int:
        """How many tokens are allowed some models only."""
        return sum(t.models is not None for t in self._tokens)

    def find(self, presented: str) -> Token | None:
        """The token presented, if it is configured: every token is compared, whatever
        matched, each with :func:`hmac.compare_digest` on 32-byte digests."""
        digest = _digest(presented)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(token.digest, digest) and found is None:
                found = token
        return found


def credentials(authorization: str | None, scheme: str) -> str | None:
    """The credentials of an ``Authorization`` header of this scheme (case-insensitive), else
    ``None``.

    >>> credentials("Bearer abc", "bearer"), credentials("Basic abc", "Bearer")
    ('abc', None)
    """
    if not authorization:
        return None
    given, _, value = authorization.strip().partition(" ")
    value = value.strip()
    return value if given.lower() == scheme.lower() and value else None


@dataclass(frozen=True)
class Grant:
    """What one write request may write: every model, or these."""

    models: frozenset[str] | None = None

    def check(self, model: str, field: str = "model") -> None:
        """Raises 403 ``forbidden`` when ``model`` is not one this request may write."""
        if self.models is not None and model not in self.models:
            raise RejectedInput(
                Reason.FORBIDDEN,
                f"this token may not write model {model!r} (it may write: "
                f"{', '.join(sorted(self.models))}); use a token allowed it, or add the model "
                "to the token's line of auth.write_tokens_file",
                field=field,
                value=model,
            )


class WritePolicy:
    """Who may write: loopback peers while no token is configured, else bearers of a token."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    def authorize(
        self, peer: str | None, authorization: str | None, local: str | None = None
    ) -> Grant:
        """What a write from ``peer`` (to the local address ``local``) with this
        ``Authorization`` header may do; raises 401 ``unauthorized`` or 403 ``forbidden`` when
        it may not write at all."""
        if not self.tokens:
            if is_local(peer, local):
                return Grant()
            raise RejectedInput(
                Reason.FORBIDDEN,
                f"writes are accepted from loopback peers only while no write token is "
                f"configured, and this request came from {peer or 'an unknown address'}"
                f"{_relayed(peer, local)}; to "
                f"accept writes from other peers, {HOW_TO_ALLOW}",
                value=peer,
            )
        secret = credentials(authorization, "Bearer")
        if secret is None:
            raise RejectedInput(
                Reason.UNAUTHORIZED,
                "writes need 'Authorization: Bearer <token>' with a configured write token",
                field="Authorization",
            )
        token = self.tokens.find(secret)
        if token is None:
            raise RejectedInput(
                Reason.UNAUTHORIZED,
                "the bearer token is not a configured write token",
                field="Authorization",
            )
        return Grant(token.models)

    def describe(self) -> str:
        """The write policy, for the start-up log."""
        if not self.tokens:
            return (
                "write API: loopback peers only (no write token configured); to accept writes "
                f"from other peers, {HOW_TO_ALLOW}"
            )
        scoped = self.tokens.scoped
        limited = f", {scoped} of them for some models only" if scoped else ""
        return (
            f"write API: {len(self.tokens)} bearer token(s){limited}; every write needs "
            "'Authorization: Bearer <token>', from loopback too"
        )


class ReadPolicy:
    """Who may read: anyone, unless basic-auth users or read tokens are configured.

    Parameters
    ----------
    users : mapping
        User name -> bcrypt hash (``basic_auth_users`` of the web config).
    tokens : Tokens
        Bearer tokens that may read.
    clock : callable
        Monotonic seconds, for the cache of successful checks.
    """

    def __init__(
        self,
        users: Mapping[str, bytes],
        tokens: Tokens,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = dict(users)
        self.tokens = tokens
        self.clock = clock
        self._cache: dict[bytes, float] = {}  # digest of user and password -> expiry
        self._lock = threading.Lock()  # the cache
        self._bcrypt = threading.Lock()  # one bcrypt check at a time
        # What an unknown user's password is checked against: a hash of the users' cost.
        cost = max((h[4:6] for h in self.users.values()), default=b"10")
        self._dummy = b"$2b$" + cost + b"$" + b"." * 53

    @property
    def required(self) -> bool:
        """Whether reads need credentials."""
        return bool(self.users or self.tokens)

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` header of a refused read."""
        schemes = ['Basic realm="model-exporter"'] if self.users else []
        if self.tokens:
            schemes.append('Bearer realm="model-exporter"')
        return ", ".join(schemes)

    def slow(self, authorization: str | None) -> bool:
        """Whether :meth:`authenticate` would run bcrypt (basic credentials not remembered):
        the caller then runs it off the event loop."""
        basic = credentials(authorization, "Basic") if self.users else None
        return basic is not None and not self._remembered(_digest(basic))

    def authenticate(self, authorization: str | None) -> None:
        """Nothing when the read is allowed; raises 401 ``unauthorized`` otherwise."""
        if not self.required:
            return
        bearer = credentials(authorization, "Bearer")
        if bearer is not None and self.tokens and self.tokens.find(bearer) is not None:
            return
        basic = credentials(authorization, "Basic")
        if basic is not None and self.users and self._basic(basic):
            return
        accepted = " or ".join(
            what
            for what, configured in (("basic auth", self.users), ("a bearer token", self.tokens))
            if configured
        )
        raise RejectedInput(
            Reason.UNAUTHORIZED,
            f"this endpoint needs {accepted} (missing or wrong credentials)",
            field="Authorization",
        )

    def _basic(self, encoded: str) -> bool:
        key = _digest(encoded)
        if self._remembered(key):
            return True
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        hashed = self.users.get(user.decode("utf-8", "replace"))
        with self._bcrypt:
            ok = bcrypt.checkpw(password, hashed or self._dummy) and hashed is not None
        if ok:
            with self._lock:
                if len(self._cache) >= CACHE_SIZE:
                    del self._cache[min(self._cache, key=self._cache.__getitem__)]
                self._cache[key] = self.clock() + CACHE_SECONDS
        return ok

    def _remembered(self, key: bytes) -> bool:
        with self._lock:
            expiry = self._cache.get(key)
            if expiry is not None and expiry <= self.clock():
                del self._cache[key]
                return False
            return expiry is not None

    def describe(self) -> str:
        """The read policy, for the start-up log."""
        if not self.required:
            return "reads (/metrics, status pages): open to every peer"
        return (
            f"reads (/metrics, status pages): need basic auth ({len(self.users)} user(s)) or a "
            f"bearer token ({len(self.tokens)}); /-/healthy and /-/ready stay open"
        )


def write_policy(settings: AuthSettings) -> WritePolicy:
    """The write policy of ``auth.*``: the token file read now (a one-line ConfigError if it
    cannot be), and the listed tokens."""
    tokens = listed_tokens(settings.write_tokens, "auth.write_tokens")
    if settings.write_tokens_file is not None:
        tokens += read_tokens(settings.write_tokens_file, "auth.write_tokens_file", scoped=True)
    return WritePolicy(Tokens(tokens))


def read_policy(settings: AuthSettings, users: Mapping[str, bytes]) -> ReadPolicy:
    """The read policy of ``auth.*`` and the web config's ``basic_auth_users``."""
    tokens = listed_tokens(settings.metrics_tokens, "auth.metrics_tokens")
    if settings.metrics_tokens_file is not None:
        tokens += read_tokens(
            settings.metrics_tokens_file, "auth.metrics_tokens_file", scoped=False
        )
    return ReadPolicy(users, Tokens(tokens))
