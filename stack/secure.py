"""The local stack in SASL/SCRAM-over-TLS mode (``nudge stack up --secure``, ``NUDGE_KAFKA_SECURITY=sasl_ssl``).

What it adds to the plain stack, all under ``<stack_dir>/secure/`` (mode 0700, secrets 0600):
- a private CA (``ca.pem``) and a broker certificate for 127.0.0.1/localhost/the configured host signed by
  it (``broker.pem``: PKCS#8 key + chain, read by Kafka as a PEM keystore), made with ``cryptography``;
- SCRAM-SHA-512 users ``nudge`` (the app), ``connect`` (Kafka Connect) and ``broker`` (the broker's own
  inter-broker and admin identity), written into the metadata log when the storage is formatted (as salted
  passwords, so no password appears on a command line) and upserted again on every ``up`` from
  ``credentials.json``, so a changed ``NUDGE_KAFKA_SASL_PASSWORD`` takes effect;
- its own Kafka data folder (``secure/kafka-data``): a cluster formatted without SCRAM users cannot be
  switched to SASL, and the plain stack's data stays untouched.

The client port carries only SASL_SSL (clients and the inter-broker listener). The KRaft controller
listener stays PLAINTEXT on loopback: KRaft does not support SCRAM on the controller listener (the
credentials live in the metadata the controller serves).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from stack.errors import StackError
from stack.layout import StackLayout
from streams.kafka_config import (
    APP_USER,
    SASL_SSL,
    SCRAM_MECHANISM,
    KafkaSecurityError,
    ca_path,
    credentials_path,
    protocol_of,
    read_credentials,
    secure_dir,
)
from streams.settings import Settings

__all__ = [
    "CONNECT_USER",
    "BROKER_USER",
    "SecureMaterial",
    "is_secure",
    "ensure_material",
    "kafka_data_dir",
    "server_overrides",
    "connect_overrides",
    "scram_format_args",
    "scram_salted_password",
    "sync_users",
    "as_broker",
]

CONNECT_USER = "connect"
BROKER_USER = "broker"
SCRAM_ITERATIONS = 8192
CERT_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
# Passwords go into Java properties and JAAS strings: keep to characters that need no quoting there.
FORBIDDEN_PASSWORD_CHARS = set('"\\;\n\r')


@dataclass(frozen=True)
class SecureMaterial:
    """The files and passwords of one secure stack."""

    ca_file: Path
    broker_pem: Path
    passwords: dict[str, str]

    def jaas(self, user: str) -> str:
        return (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{user}" password="{self.passwords[user]}";'
        )


def is_secure(settings: Settings) -> bool:
    try:
        return protocol_of(settings) == SASL_SSL
    except KafkaSecurityError as exc:
        raise StackError(str(exc)) from exc


def kafka_data_dir(settings: Settings, layout: StackLayout) -> Path:
    """The secure cluster's own log dir; the plain one keeps layout.kafka_data_dir."""
    return secure_dir(settings) / "kafka-data" if is_secure(settings) else layout.kafka_data_dir


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only (created 0600, never briefly world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


def _check_password(user: str, password: str) -> None:
    bad = FORBIDDEN_PASSWORD_CHARS & set(password)
    if bad:
        raise StackError(f"the SASL password of {user!r} contains {sorted(bad)!r}: quotes, backslashes, "
                         "semicolons and line breaks are not allowed (they would break the JAAS config)")
    if len(password) < 12:
        raise StackError(f"the SASL password of {user!r} is shorter than 12 characters")


def _passwords(settings: Settings) -> dict[str, str]:
    """Stored passwords, a generated one for each missing user, the app's from the settings when given."""
    stored = read_credentials(settings)
    app_user = settings.kafka_sasl_username or APP_USER
    if app_user in (CONNECT_USER, BROKER_USER):
        raise StackError(f"NUDGE_KAFKA_SASL_USERNAME={app_user!r} is reserved for the stack itself")
    passwords = dict(stored)
    for user in (app_user, CONNECT_USER, BROKER_USER):
        passwords.setdefault(user, secrets.token_urlsafe(24))
    if settings.kafka_sasl_password:
        passwords[app_user] = settings.kafka_sasl_password
    for user, password in passwords.items():
        _check_password(user, password)
    if passwords != stored:
        _write_private(credentials_path(settings), (json.dumps(passwords, indent=2) + "\n").encode())
    return passwords


def _names(settings: Settings) -> tuple[list[str], list[str]]:
    dns, ips = ["localhost"], ["127.0.0.1"]
    try:
        ipaddress.ip_address(settings.host)
        ips.append(settings.host)
    except ValueError:
        dns.append(settings.host)
    return sorted(set(dns)), sorted(set(ips))


def _certificate_current(ca_file: Path, broker_pem: Path, settings: Settings) -> bool:
    """Both certificates exist, are valid for a while yet, and the broker's covers the configured host."""
    from cryptography import x509

    try:
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        broker = x509.load_pem_x509_certificates(broker_pem.read_bytes())[0]
    except (FileNotFoundError, ValueError):
        return False
    soon = dt.datetime.now(dt.UTC) + RENEW_BEFORE
    if ca.not_valid_after_utc < soon or broker.not_valid_after_utc < soon or broker.issuer != ca.subject:
        return False
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns, ips = _names(settings)
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(dns) <= set(san.get_values_for_type(x509.DNSName)) and set(ips) <= have_ips


def _make_certificates(ca_file: Path, broker_pem: Path, settings: Settings) -> None:
    """A fresh CA and a broker certificate signed by it (ECDSA P-256: fast to make, accepted by JDK and
    OpenSSL). The CA key is thrown away: nothing else is ever signed with it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=CERT_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"nudgestream local CA {secrets.token_hex(4)}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = _names(settings)
    broker = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nudgestream-kafka")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        ), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(broker_pem, key_pem + broker.public_bytes(pem) + ca.public_bytes(pem))
    ca_file.write_bytes(ca.public_bytes(pem))


def ensure_material(settings: Settings) -> SecureMaterial:
    """Create (once) or renew the CA, the broker certificate and the passwords; idempotent."""
    folder = secure_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_file, broker_pem = ca_path(settings), folder / "broker.pem"
    if not _certificate_current(ca_file, broker_pem, settings):
        _make_certificates(ca_file, broker_pem, settings)
    try:
        passwords = _passwords(settings)
    except KafkaSecurityError as exc:
        raise StackError(str(exc)) from exc
    return SecureMaterial(ca_file, broker_pem, passwords)


def server_overrides(settings: Settings, material: SecureMaterial) -> dict[str, object]:
    """server.properties entries of the SASL_SSL broker (replacing the plain listener settings)."""
    host = settings.host
    return {
        "listeners": f"SASL_SSL://{host}:{settings.kafka_port},CONTROLLER://{host}:{settings.kafka_controller_port}",
        "advertised.listeners": f"SASL_SSL://{host}:{settings.kafka_port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": material.jaas(BROKER_USER),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": material.broker_pem,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": material.ca_file,
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.client.auth": "none",
        "super.users": f"User:{BROKER_USER}",
    }


def _client_entries(material: SecureMaterial, user: str, prefix: str = "") -> dict[str, object]:
    return {
        f"{prefix}security.protocol": "SASL_SSL",
        f"{prefix}sasl.mechanism": SCRAM_MECHANISM,
        f"{prefix}sasl.jaas.config": material.jaas(user),
        f"{prefix}ssl.truststore.type": "PEM",
        f"{prefix}ssl.truststore.location": material.ca_file,
        f"{prefix}ssl.endpoint.identification.algorithm": "https",
    }


def connect_overrides(material: SecureMaterial) -> dict[str, object]:
    """Connect's worker, and the producers, consumers and admin clients of its tasks (the sink's consumer,
    its dead-letter producer and the admin client that creates the dead-letter topic) all as ``connect``."""
    entries: dict[str, object] = {}
    for prefix in ("", "producer.", "consumer.", "admin."):
        entries.update(_client_entries(material, CONNECT_USER, prefix))
    return entries


def scram_salted_password(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802 Hi() = PBKDF2 with HMAC-SHA-512), what Kafka stores."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


def scram_format_args(material: SecureMaterial) -> list[str]:
    """``--add-scram`` arguments of StorageTool's format for every user, as salted passwords (no clear
    password on the command line)."""
    args: list[str] = []
    for user, password in sorted(material.passwords.items()):
        salt = secrets.token_bytes(16)
        salted = scram_salted_password(password, salt)
        b64 = base64.b64encode
        args += ["--add-scram", (
            f'{SCRAM_MECHANISM}=[name={user},iterations={SCRAM_ITERATIONS},'
            f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]'
        )]
    return args


def as_broker(settings: Settings, material: SecureMaterial) -> Settings:
    """The settings with the broker's own SCRAM identity, which never changes after the format."""
    return replace(settings, kafka_sasl_username=BROKER_USER, kafka_sasl_password=material.passwords[BROKER_USER])


def sync_users(settings: Settings, material: SecureMaterial) -> None:
    """Upsert every user but the broker with its current password (a changed NUDGE_KAFKA_SASL_PASSWORD,
    or a user added after the format), authenticating as the broker user."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialAlteration,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": SCRAM_MECHANISM,
        "sasl.username": BROKER_USER,
        "sasl.password": material.passwords[BROKER_USER],
        "ssl.ca.location": str(material.ca_file),
    })
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, password.encode(), secrets.token_bytes(16))
        for user, password in sorted(material.passwords.items())
        if user != BROKER_USER
    ]
    try:
        for future in admin.alter_user_scram_credentials(upserts, request_timeout=30).values():
            future.result()
    except KafkaException as exc:
        raise StackError(f"updating the SCRAM users on {settings.bootstrap_servers} failed: {exc.args[0]}") from exc
