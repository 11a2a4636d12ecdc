"""The link to the centre: brokers, login, TLS, protocol and timeouts."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from agent import credentials
from agent.config.base import Strict
from agent.errors import ConfigError

__all__ = ["Broker", "MqttConfig", "TlsConfig", "parse_broker"]

_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")  # a DNS name or IPv4


@dataclass(frozen=True)
class Broker:
    """One broker address; ``str()`` gives ``host:port`` (IPv6 in brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _host_problem(host: str) -> str | None:
    """Why ``host`` (no port) is not a host name or an IP address; None when it is one."""
    if "://" in host:
        return "give a host name or address without a scheme (no mqtt:// or tcp://)"
    if "," in host or any(c.isspace() for c in host):
        return "one host only: no commas or spaces (list several under mqtt.hosts)"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "a port goes in mqtt.port, or write host:port under mqtt.hosts"
        return None
    if not _NAME.match(host):
        return "not a host name or an IP address"
    return None


def parse_broker(text: str, default_port: int) -> Broker:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; ValueError saying what is wrong."""
    host, port = text, str(default_port)
    if "://" in text:
        raise ValueError(_host_problem(text))
    if not text.startswith("[") and text.count(":") > 1:
        raise ValueError("write an IPv6 address in brackets, e.g. [fd00::1]:8883")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("an IPv6 address in brackets needs its closing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError("after ']' only ':port' may follow")
            port = rest[1:]
        if ":" not in host:
            raise ValueError("brackets are for IPv6 addresses only")
    elif text.count(":") == 1:
        host, port = text.split(":")
    problem = _host_problem(host) if host else "the host is empty"
    if problem is None and not port.isdigit():
        problem = "the port must be a number"
    if problem is None and not 1 <= int(port) <= 65535:
        problem = "the port must be 1..65535"
    if problem is not None:
        raise ValueError(problem)
    return Broker(host, int(port))


def _check_host(value: str) -> str:
    problem = _host_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _check_hosts_entry(value: str) -> str:
    parse_broker(value, 1883)
    return value


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
    host: Annotated[str, AfterValidator(_check_host)] = Field(
        default="127.0.0.1", min_length=1, description="Broker host (one; see hosts)."
    )
    port: int = Field(
        default=1883, ge=1, le=65535, description="Broker port; the default port for hosts."
    )
    hosts: tuple[Annotated[str, AfterValidator(_check_hosts_entry)], ...] | None = Field(
        default=None,
        description="Brokers to try in turn, 'host[:port]' ('[v6]:port'); overrides host. "
        "When absent it is [host:port].",
    )
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
    stable_after_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="A connection up this long resets the reconnect backoff.",
    )
    connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Total time for DNS, TCP and TLS of one attempt; again for the CONNACK.",
    )

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts_list(cls, value: object) -> object:
        if isinstance(value, str):  # a YAML scalar instead of a list: say so, never split it
            raise ValueError("must be a list of 'host[:port]', e.g. [broker-a, broker-b:8883]")
        if value is not None and not value:
            raise ValueError("name at least one broker (or leave hosts out and give host)")
        return value

    @model_validator(mode="after")
    def _one_password(self) -> MqttConfig:
        given = [n for n in ("password_file", "password_env", "password") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give one of password_file, password_env, password; got {given}")
        return self

    @model_validator(mode="after")
    def _normalise_hosts(self) -> MqttConfig:
        # One list for the link; host/port name the first broker for older readers.
        # The model is frozen to its users; this runs once, while it is being built.
        if self.hosts is None:
            object.__setattr__(self, "hosts", (str(Broker(self.host, self.port)),))
        else:
            first = self.brokers()[0]
            object.__setattr__(self, "host", first.host)
            object.__setattr__(self, "port", first.port)
        return self

    def brokers(self) -> tuple[Broker, ...]:
        """Every broker to try, in order (``hosts``, or ``host``/``port``)."""
        if not self.hosts:
            return (Broker(self.host, self.port),)
        return tuple(parse_broker(h, self.port) for h in self.hosts)

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
