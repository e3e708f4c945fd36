"""Security settings of every Kafka client, from one place: confluent-kafka, aiokafka and Faust.

With ``kafka_security="plaintext"`` (the default) every function returns an empty mapping, so a client's
configuration is exactly what it was without security. With ``"sasl_ssl"`` clients authenticate with
SCRAM-SHA-512 over TLS, verifying the broker's certificate (hostname included) against a CA file.

Where the secrets come from: ``NUDGE_KAFKA_SASL_USERNAME`` (default ``nudge``), ``NUDGE_KAFKA_SASL_PASSWORD``
and ``NUDGE_KAFKA_CA_FILE``; an empty password or CA file falls back to what ``nudge stack up --secure``
generated under ``<stack_dir>/secure/`` (``credentials.json``, ``ca.pem``), so a worker started against the
local secure stack needs only ``NUDGE_KAFKA_SECURITY=sasl_ssl`` and the same cache dir.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.settings import Settings

__all__ = [
    "PLAINTEXT",
    "SASL_SSL",
    "SCRAM_MECHANISM",
    "APP_USER",
    "KafkaSecurityError",
    "KafkaSecurity",
    "secure_dir",
    "ca_path",
    "credentials_path",
    "read_credentials",
    "security",
    "confluent_security",
    "aiokafka_security",
    "faust_security",
    "ssl_context",
]

PLAINTEXT = "plaintext"
SASL_SSL = "sasl_ssl"
SCRAM_MECHANISM = "SCRAM-SHA-512"
APP_USER = "nudge"
CA_FILE_NAME = "ca.pem"
CREDENTIALS_FILE_NAME = "credentials.json"


class KafkaSecurityError(ValueError):
    """The security settings are inconsistent or their files are missing; the message says how to fix it."""


@dataclass(frozen=True)
class KafkaSecurity:
    """Resolved client security: for ``plaintext`` the other fields are empty."""

    protocol: str
    username: str = ""
    password: str = ""
    ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return self.protocol == SASL_SSL

    def __repr__(self) -> str:  # never print the password
        return f"KafkaSecurity(protocol={self.protocol!r}, username={self.username!r}, ca_file={self.ca_file!r})"


def secure_dir(settings: Settings) -> Path:
    """Where the secure local stack keeps its CA, broker certificate and generated passwords."""
    return settings.stack_dir / "secure"


def ca_path(settings: Settings) -> Path:
    return secure_dir(settings) / CA_FILE_NAME


def credentials_path(settings: Settings) -> Path:
    return secure_dir(settings) / CREDENTIALS_FILE_NAME


def read_credentials(settings: Settings) -> dict[str, str]:
    """The SCRAM users and passwords the local secure stack created ({} when it never ran)."""
    path = credentials_path(settings)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise KafkaSecurityError(f"{path} is not valid JSON ({exc}); delete it and run `nudge stack up --secure`") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise KafkaSecurityError(f"{path} must map user names to passwords")
    return data


def protocol_of(settings: Settings) -> str:
    value = settings.kafka_security.strip().lower()
    if value not in (PLAINTEXT, SASL_SSL):
        raise KafkaSecurityError(
            f"NUDGE_KAFKA_SECURITY={settings.kafka_security!r} is not supported; use {PLAINTEXT!r} or {SASL_SSL!r}"
        )
    return value


def security(settings: Settings) -> KafkaSecurity:
    """Resolve the settings (and the local stack's generated files) into what a client needs."""
    protocol = protocol_of(settings)
    if protocol == PLAINTEXT:
        return KafkaSecurity(PLAINTEXT)
    username = settings.kafka_sasl_username or APP_USER
    password = settings.kafka_sasl_password or read_credentials(settings).get(username, "")
    if not password:
        raise KafkaSecurityError(
            f"no SASL password for Kafka user {username!r}: set NUDGE_KAFKA_SASL_PASSWORD, or start the local "
            f"secure stack (`nudge stack up --secure`), which writes {credentials_path(settings)}"
        )
    ca_file = settings.kafka_ca_file or str(ca_path(settings))
    if not Path(ca_file).is_file():
        raise KafkaSecurityError(
            f"CA file {ca_file} does not exist: set NUDGE_KAFKA_CA_FILE to the PEM file of the CA that signed "
            "the broker's certificate, or start the local secure stack (`nudge stack up --secure`)"
        )
    return KafkaSecurity(SASL_SSL, username, password, ca_file)


def confluent_security(settings: Settings) -> dict[str, Any]:
    """Entries to add to a confluent-kafka (librdkafka) Producer/Consumer/AdminClient configuration."""
    sec = security(settings)
    if not sec.enabled:
        return {}
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": SCRAM_MECHANISM,
        "sasl.username": sec.username,
        "sasl.password": sec.password,
        "ssl.ca.location": sec.ca_file,
        "ssl.endpoint.identification.algorithm": "https",
    }


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context trusting only the configured CA, with hostname checking on."""
    sec = security(settings)
    if not sec.enabled:
        raise KafkaSecurityError("ssl_context() needs NUDGE_KAFKA_SECURITY=sasl_ssl")
    return ssl.create_default_context(cafile=sec.ca_file)


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments to add to an aiokafka AIOKafkaConsumer/AIOKafkaProducer."""
    sec = security(settings)
    if not sec.enabled:
        return {}
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": SCRAM_MECHANISM,
        "sasl_plain_username": sec.username,
        "sasl_plain_password": sec.password,
        "ssl_context": ssl_context(settings),
    }


def faust_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments to add to ``faust.App(...)``: ``broker_credentials`` (SASL SCRAM with a TLS context)."""
    sec = security(settings)
    if not sec.enabled:
        return {}
    import faust
    from faust.types.auth import SASLMechanism

    return {
        "broker_credentials": faust.SASLCredentials(
            username=sec.username,
            password=sec.password,
            ssl_context=ssl_context(settings),
            mechanism=SASLMechanism.SCRAM_SHA_512,
        )
    }
