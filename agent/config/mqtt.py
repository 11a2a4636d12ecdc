"""The link to the centre: broker, login, TLS, protocol and timeouts."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from agent import credentials
from agent.config.base import Strict
from agent.errors import ConfigError

__all__ = ["MqttConfig", "TlsConfig"]


class TlsConfig(Strict):
    ca: str = Field(min_length=1, description="CA certificate file (PEM) of the broker.")
    cert: str | None = Field(default=None, description="Client certificate (mutual TLS).")
    key: str | None = Field(default=None, description="Client private key (mutual TLS).")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("'cert' and 'key' go together")
        return self


class MqttConfig(Strict):
    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    tls: TlsConfig | None = Field(default=None, description="TLS; absent means plain TCP.")
    username: str | None = Field(default=None, description="MQTT user name.")
    password_file: str | None = Field(default=None, description="File holding the password.")
    password_env: str | None = Field(default=None, description="Variable holding the password.")
    password: SecretStr | None = Field(
        default=None, description="Password itself (prefer password_file); never printed."
    )
    topic_prefix: str = Field(
        default="pole", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", description="Topic root."
    )
    client_id: str | None = Field(default=None, description="Stable client id; default device id.")
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto", description="MQTT version; auto tries 5 then falls back to 3.1.1."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="Keepalive interval.")
    max_inflight: int = Field(default=32, ge=1, le=1000, description="Unacknowledged publishes.")
    backoff_min_s: float = Field(default=0.5, gt=0, le=60, description="First reconnect delay.")
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600, description="Longest delay.")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60, description="TCP/TLS timeout.")

    @model_validator(mode="after")
    def _one_password(self) -> MqttConfig:
        given = [n for n in ("password_file", "password_env", "password") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give one of password_file, password_env, password; got {given}")
        return self

    def resolve_password(self) -> str | None:
        """The password from the file, the environment or the config; None when unset."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file:
            return credentials.read_text(self.password_file, "mqtt.password_file")
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError("mqtt", [f"mqtt.password_env: ${self.password_env} is not set"])
            return value
        return None
