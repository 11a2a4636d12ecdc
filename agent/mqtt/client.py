"""The one place a paho client is made: protocol, session, login, TLS, timeouts.

The pole's link, the doctor's probe and the centre's tools all build their clients here, so
a TLS or login setting means the same thing everywhere.  ``tls_set`` reads the CA,
certificate and key files at once: a missing or mismatched file raises here, before any
connection, as :class:`ClientSetupError` naming the file.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent import credentials
from agent.config import MqttConfig
from agent.errors import CredentialError

__all__ = ["ClientSetupError", "ClientSpec", "client_spec", "new_client"]


class ClientSetupError(CredentialError):
    """A client could not be set up (a TLS file missing, unreadable or not matching)."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message, file)
        self.file = file


@dataclass(frozen=True)
class ClientSpec:
    """Everything about a client except its callbacks and the broker's address."""

    client_id: str = ""
    v5: bool = True
    clean_session: bool = False  # MQTT 3.1.1 only; v5 sessions are set at connect
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    connect_timeout_s: float = 5.0


def client_spec(cfg: MqttConfig, client_id: str, password: str | None, *, v5: bool) -> ClientSpec:
    """The spec of a unit's client from its ``mqtt`` section (key file under credentials)."""
    tls = cfg.tls
    return ClientSpec(
        client_id=client_id,
        v5=v5,
        username=cfg.username,
        password=password,
        tls_ca=tls.ca if tls else None,
        tls_cert=tls.cert if tls else None,
        tls_key=str(credentials.resolve(tls.key)) if tls and tls.key else None,
        connect_timeout_s=cfg.connect_timeout_s,
    )


def new_client(spec: ClientSpec) -> mqtt.Client:
    """A paho client, not yet connected. ClientSetupError when its TLS files are unusable."""
    if spec.v5:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=spec.client_id, protocol=mqtt.MQTTv5
        )
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=spec.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=spec.clean_session,
        )
    client.connect_timeout = spec.connect_timeout_s
    if spec.username is not None:
        client.username_pw_set(spec.username, spec.password)
    if spec.tls_ca is not None or spec.tls_cert is not None:
        try:
            client.tls_set(
                ca_certs=spec.tls_ca,
                certfile=spec.tls_cert,
                keyfile=spec.tls_key,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except FileNotFoundError as exc:
            name = exc.filename or spec.tls_ca or spec.tls_cert
            raise ClientSetupError(f"TLS file not found: {name}", str(name)) from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            name = _tls_culprit(spec, exc)
            raise ClientSetupError(f"TLS files not usable ({name}): {exc}", name) from None
    return client


def _tls_culprit(spec: ClientSpec, exc: BaseException) -> str:
    """Which file a TLS error is about, as well as an error text lets us tell."""
    text = str(exc).lower()
    if spec.tls_key and ("key" in text or "pem lib" in text):
        return spec.tls_key
    if spec.tls_cert and "cert" in text and spec.tls_ca is None:
        return spec.tls_cert
    return spec.tls_ca or spec.tls_cert or "?"
