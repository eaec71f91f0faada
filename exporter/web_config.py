"""The web configuration: TLS and basic auth, in Prometheus exporter-toolkit's format.

``--web-config FILE`` (config ``web_config``) takes the ``web-config.yml`` of Prometheus'
exporters (node_exporter's ``--web.config.file``), so a Prometheus scrape config written for
them works unchanged::

    tls_server_config:
      cert_file: server.crt        # relative paths are relative to this file's folder
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
      client_ca_file: ca.crt       # needed by the Verify* types, refused without them
      min_version: TLS12           # default TLS12; TLS13
      max_version: TLS13           # optional
    basic_auth_users:
      prometheus: $2y$10$...       # a bcrypt hash: htpasswd -nBC 10 "" | tr -d ':\\n'

Read strictly: a key this module does not know is a one-line :class:`ConfigError` naming it, and
so is a key of exporter-toolkit's that it does not implement (``http_server_config``, inline
``cert``/``key``, ``cipher_suites``, ...): a TLS option silently ignored would weaken what was
asked for. So are ``client_auth_type`` ``RequestClientCert`` and ``RequireAnyClientCert``
(Python's ``ssl`` verifies every certificate it asks for) and TLS below 1.2. The certificate,
key and CA are loaded once while reading, so that a wrong file fails start-up, not the first
handshake.

:func:`uvicorn_tls_options` turns it into ``uvicorn.Config`` keyword arguments; the basic-auth
users go to :class:`exporter.auth.ReadPolicy`.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from exporter.config import describe_validation_error, read_yaml_mapping
from exporter.errors import ConfigError

ClientAuthType = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
TLSVersionName = Literal["TLS12", "TLS13"]

_VERIFY: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_VERSIONS: Final = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

#: exporter-toolkit keys this module does not implement: refused by name, never ignored.
_NOT_IMPLEMENTED: Final = {
    "": {"http_server_config", "rate_limit"},
    "tls_server_config": {
        "cert",
        "key",
        "client_ca",
        "client_allowed_sans",
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
    },
}
_NOT_IMPLEMENTED_AUTH: Final = {"RequestClientCert", "RequireAnyClientCert"}
_BCRYPT: Final = re.compile(r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    """``tls_server_config``: the server's certificate and key, and what it asks of clients."""

    cert_file: Path
    key_file: Path
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName | None = None

    @field_validator("client_auth_type", mode="before")
    @classmethod
    def _implemented(cls, value: Any) -> Any:
        if value in _NOT_IMPLEMENTED_AUTH:
            raise ValueError(
                f"{value} is not supported (Python's ssl verifies every client certificate "
                "it asks for): use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifies and self.client_ca_file is not None:
            raise ValueError(
                "client_ca_file is set but client_auth_type is NoClientCert: set "
                "client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )
        if self.max_version is not None and self.max_version < self.min_version:
            raise ValueError(f"max_version {self.max_version} is below min_version")
        return self


class WebConfig(_Strict):
    """A whole web config; an empty one (no TLS, no users) changes nothing."""

    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] = {}

    @field_validator("basic_auth_users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        for user, hashed in value.items():
            if not user or ":" in user:
                raise ValueError(f"user {user!r}: a user name is not empty and holds no ':'")
            if not _BCRYPT.fullmatch(hashed):
                raise ValueError(f"user {user!r}: the password must be a bcrypt hash ($2y$...)")
        return value

    @property
    def users(self) -> dict[str, bytes]:
        """User name -> bcrypt hash, as :class:`exporter.auth.ReadPolicy` takes them."""
        return {user: hashed.encode() for user, hashed in self.basic_auth_users.items()}


def parse_web_config(data: dict[str, Any], folder: Path = Path()) -> WebConfig:
    """A web config from its YAML mapping, file paths resolved against ``folder``; raises a
    one-line :class:`ConfigError` naming every wrong key."""
    for section, keys in _NOT_IMPLEMENTED.items():
        node = data.get(section) if section else data
        found = sorted(keys & set(node)) if isinstance(node, dict) else []
        if found:
            where = ", ".join(f"{section}.{k}" if section else k for k in found)
            raise ConfigError(
                f"config key 'web_config': {where}: exporter-toolkit's, not supported by "
                "model-exporter (remove it)"
            )
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation_error(exc, root="web_config.")
        raise ConfigError(f"invalid web config: {problems}") from None
    tls = config.tls_server_config
    if tls is None:
        return config
    resolved = {
        key: folder / path
        for key in ("cert_file", "key_file", "client_ca_file")
        if (path := getattr(tls, key)) is not None
    }
    tls = tls.model_copy(update=resolved)
    _check_files(tls)
    return config.model_copy(update={"tls_server_config": tls})


def load_web_config(path: Path | None) -> WebConfig:
    """The web config at ``path`` (none: an empty one); a one-line :class:`ConfigError` when
    it cannot be read or used."""
    if path is None:
        return WebConfig()
    return parse_web_config(read_yaml_mapping(path, "web config"), path.parent)


def _check_files(tls: TLSServerConfig) -> None:
    """Load the certificate, key and CA once: a wrong file fails here, naming its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"config key 'web_config': tls_server_config.cert_file {str(tls.cert_file)!r} and "
            f"key_file {str(tls.key_file)!r} cannot be used: {_why(exc)}"
        ) from None
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"config key 'web_config': tls_server_config.client_ca_file "
                f"{str(tls.client_ca_file)!r} cannot be used: {_why(exc)}"
            ) from None


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return exc.strerror or str(exc)


def uvicorn_tls_options(cfg: WebConfig) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments serving ``cfg``'s TLS (none without TLS).

    Certificate, key, client verification and CA are uvicorn's own options; the TLS version
    bounds are set by an ``ssl_context_factory``, only when they differ from Python's defaults
    (minimum TLS 1.2, no maximum), so that the usual case needs no recent uvicorn.
    """
    tls = cfg.tls_server_config
    if tls is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(tls.cert_file),
        "ssl_keyfile": str(tls.key_file),
        "ssl_cert_reqs": _VERIFY[tls.client_auth_type],
    }
    if tls.client_ca_file is not None:
        options["ssl_ca_certs"] = str(tls.client_ca_file)
    if tls.min_version != "TLS12" or tls.max_version is not None:
        options["ssl_context_factory"] = functools.partial(_bounded, tls)
    return options


def _bounded(
    tls: TLSServerConfig, config: object, default: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    """uvicorn's context, its TLS versions bounded as ``tls`` says."""
    context = default()
    context.minimum_version = _VERSIONS[tls.min_version]
    if tls.max_version is not None:
        context.maximum_version = _VERSIONS[tls.max_version]
    return context
