"""Kafka client security settings (streams/kafka_config.py) and the secure stack's material (stack/secure.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import stat
from pathlib import Path

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from stack import secure
from stack.configs import connect_worker_properties, kafka_server_properties
from stack.errors import StackError
from stack.layout import StackLayout
from streams.kafka_config import (
    KafkaSecurityError,
    aiokafka_security,
    confluent_security,
    credentials_path,
    faust_security,
    security,
)
from streams.settings import Settings, load_settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    return load_settings({}, cache_dir=tmp_path, **values)


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_plaintext_adds_nothing_to_any_client(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert confluent_security(settings) == {}
    assert aiokafka_security(settings) == {}
    assert faust_security(settings) == {}
    assert not security(settings).enabled


def test_environment_selects_sasl_ssl_case_insensitively(tmp_path: Path) -> None:
    settings = load_settings({"NUDGE_KAFKA_SECURITY": "SASL_SSL", "NUDGE_CACHE_DIR": str(tmp_path)})
    with pytest.raises(KafkaSecurityError, match="no SASL password"):
        security(settings)


def test_unknown_protocol_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaSecurityError, match="NUDGE_KAFKA_SECURITY='ssl' is not supported"):
        confluent_security(_settings(tmp_path, kafka_security="ssl"))


def test_missing_ca_file_names_the_variable(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_security="sasl_ssl", kafka_sasl_password="a-long-password",
                         kafka_ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(KafkaSecurityError, match="NUDGE_KAFKA_CA_FILE"):
        confluent_security(settings)


def test_clients_use_the_generated_password_and_ca(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_security="sasl_ssl")
    material = secure.ensure_material(settings)
    conf = confluent_security(settings)
    assert conf == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "nudge",
        "sasl.password": material.passwords["nudge"],
        "ssl.ca.location": str(material.ca_file),
        "ssl.endpoint.identification.algorithm": "https",
    }
    kwargs = aiokafka_security(settings)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512" and kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_plain_password"] == material.passwords["nudge"]
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    creds = faust_security(settings)["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.protocol.value == "SASL_SSL"
    assert creds.username == "nudge" and creds.password == material.passwords["nudge"]
    assert material.passwords["nudge"] not in repr(security(settings))


def test_broker_certificate_is_signed_by_the_ca_for_loopback_names(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_security="sasl_ssl")
    material = secure.ensure_material(settings)
    ca = x509.load_pem_x509_certificate(material.ca_file.read_bytes())
    chain = x509.load_pem_x509_certificates(material.broker_pem.read_bytes())
    broker = chain[0]
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    broker.verify_directly_issued_by(ca)
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert b"BEGIN PRIVATE KEY" in material.broker_pem.read_bytes()  # PKCS#8, what Kafka's PEM keystore reads
    for secret in (material.broker_pem, credentials_path(settings)):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # Idempotent: a second call keeps certificates and passwords.
    again = secure.ensure_material(settings)
    assert again.passwords == material.passwords
    assert again.ca_file.read_bytes() == material.ca_file.read_bytes()


def test_certificate_is_remade_when_the_host_changes(tmp_path: Path) -> None:
    first = secure.ensure_material(_settings(tmp_path, kafka_security="sasl_ssl"))
    old_ca = first.ca_file.read_bytes()
    second = secure.ensure_material(_settings(tmp_path, kafka_security="sasl_ssl", host="127.0.0.2"))
    broker = x509.load_pem_x509_certificates(second.broker_pem.read_bytes())[0]
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.2" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert second.ca_file.read_bytes() != old_ca


def test_a_given_password_replaces_the_generated_one_and_is_validated(tmp_path: Path) -> None:
    generated = secure.ensure_material(_settings(tmp_path, kafka_security="sasl_ssl"))
    given = secure.ensure_material(
        _settings(tmp_path, kafka_security="sasl_ssl", kafka_sasl_password="correct-horse-battery")
    )
    assert given.passwords["nudge"] == "correct-horse-battery"
    assert given.passwords["connect"] == generated.passwords["connect"]
    assert json.loads(credentials_path(_settings(tmp_path)).read_text())["nudge"] == "correct-horse-battery"
    with pytest.raises(StackError, match="not allowed"):
        secure.ensure_material(_settings(tmp_path, kafka_security="sasl_ssl", kafka_sasl_password='bad"password-x'))
    with pytest.raises(StackError, match="shorter than 12"):
        secure.ensure_material(_settings(tmp_path, kafka_security="sasl_ssl", kafka_sasl_password="short"))
    with pytest.raises(StackError, match="reserved"):
        secure.ensure_material(_settings(tmp_path, kafka_security="sasl_ssl", kafka_sasl_username="broker"))


def test_secure_broker_listens_only_with_sasl_ssl_on_the_client_port(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_security="sasl_ssl", kafka_port=29192, kafka_controller_port=29193)
    material = secure.ensure_material(settings)
    layout = StackLayout(settings.stack_dir)
    props = _properties(kafka_server_properties(settings, layout, material))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:29192,CONTROLLER://127.0.0.1:29193"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:29192"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["log.dirs"] == str(settings.stack_dir / "secure" / "kafka-data")
    assert f'password="{material.passwords["broker"]}"' in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    plain = _properties(kafka_server_properties(_settings(tmp_path), layout))
    assert plain["listeners"].startswith("PLAINTEXT://") and "sasl.enabled.mechanisms" not in plain


def test_connect_worker_and_task_clients_all_use_sasl_ssl(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_security="sasl_ssl")
    material = secure.ensure_material(settings)
    props = _properties(connect_worker_properties(settings, StackLayout(settings.stack_dir), material))
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SASL_SSL"
        assert props[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert 'username="connect"' in props[f"{prefix}sasl.jaas.config"]
        assert props[f"{prefix}ssl.truststore.location"] == str(material.ca_file)


def _hi(password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5802's Hi() written out with HMAC, to check the PBKDF2 shortcut."""
    u = hmac.new(password, salt + b"\x00\x00\x00\x01", hashlib.sha512).digest()
    out = bytearray(u)
    for _ in range(iterations - 1):
        u = hmac.new(password, u, hashlib.sha512).digest()
        out = bytearray(a ^ b for a, b in zip(out, u, strict=True))
    return bytes(out)


def test_format_arguments_carry_salted_passwords_only(tmp_path: Path) -> None:
    material = secure.ensure_material(_settings(tmp_path, kafka_security="sasl_ssl"))
    args = secure.scram_format_args(material)
    assert args[::2] == ["--add-scram"] * 3
    joined = " ".join(args)
    for password in material.passwords.values():
        assert password not in joined
    assert "name=broker,iterations=8192,salt=" in joined
    assert secure.scram_salted_password("pencil", b"salt", 50) == _hi(b"pencil", b"salt", 50)
