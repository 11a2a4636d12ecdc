"""mqtt.hosts as a technician writes it, and the backoff that only a stable connection resets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import ConfigError, load
from agent.config.mqtt import Broker
from agent.mqtt.hosts import Backoff, HostRing

DEVICE = {"id": "pole-1", "site": "s1", "pole": "P-1", "latitude": 37.5, "longitude": 127.0}


def site(tmp_path: Path, mqtt: dict[str, Any]) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"profile": "dev-sim", "device": DEVICE, "mqtt": mqtt}))
    return path


def problems(tmp_path: Path, mqtt: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(site(tmp_path, mqtt))
    return err.value.problems


def test_host_and_port_are_normalised_into_hosts(tmp_path: Path) -> None:
    cfg = load(site(tmp_path, {"host": "broker.city", "port": 8883})).mqtt
    assert cfg.hosts == ("broker.city:8883",)
    assert cfg.brokers() == (Broker("broker.city", 8883),)


def test_hosts_take_a_port_each_or_the_default_and_ipv6_in_brackets(tmp_path: Path) -> None:
    hosts = ["a.city", "b.city:1884", "[fd00::1]:8883", "[fd00::2]", "10.0.0.7"]
    cfg = load(site(tmp_path, {"hosts": hosts, "port": 8883})).mqtt
    assert [str(b) for b in cfg.brokers()] == [
        "a.city:8883",
        "b.city:1884",
        "[fd00::1]:8883",
        "[fd00::2]:8883",
        "10.0.0.7:8883",
    ]
    assert (cfg.host, cfg.port) == ("a.city", 8883)  # the first, for older readers


@pytest.mark.parametrize(
    ("mqtt", "expected"),
    [
        ({"host": "a,b"}, "mqtt.host: one host only: no commas or spaces"),
        ({"host": "a b"}, "mqtt.host: one host only"),
        ({"host": "mqtt://a"}, "mqtt.host: give a host name or address without a scheme"),
        ({"host": "a:1883"}, "mqtt.host: a port goes in mqtt.port"),
        ({"hosts": "a,b"}, "mqtt.hosts: must be a list"),
        ({"hosts": []}, "mqtt.hosts: name at least one broker"),
        ({"hosts": ["a", "b,c"]}, "mqtt.hosts[1]: one host only"),
        ({"hosts": ["tcp://a"]}, "mqtt.hosts[0]: give a host name or address without a scheme"),
        ({"hosts": ["a:0"]}, "mqtt.hosts[0]: the port must be 1..65535"),
        ({"hosts": ["a:65536"]}, "mqtt.hosts[0]: the port must be 1..65535"),
        ({"hosts": ["a:x"]}, "mqtt.hosts[0]: the port must be a number"),
        ({"hosts": ["[fd00::1"]}, "mqtt.hosts[0]: an IPv6 address in brackets needs"),
        ({"hosts": ["fd00::1"]}, "mqtt.hosts[0]: write an IPv6 address in brackets"),
    ],
)
def test_a_bad_broker_address_is_an_error_naming_the_field(
    tmp_path: Path, mqtt: dict[str, Any], expected: str
) -> None:
    found = problems(tmp_path, mqtt)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_the_ring_stays_until_told_to_move() -> None:
    ring = HostRing((Broker("a", 1), Broker("b", 2)))
    assert ring.current == Broker("a", 1)
    assert ring.advance()
    assert ring.current == Broker("b", 2)
    assert ring.advance()
    assert ring.current == Broker("a", 1)
    assert not HostRing((Broker("a", 1),)).advance()


def test_the_backoff_resets_only_after_a_stable_connection() -> None:
    backoff = Backoff(1.0, 60.0, stable_after_s=30.0)
    for _ in range(4):
        backoff.failed(0.0)
    backoff.up(100.0)
    backoff.tick(110.0)  # a CONNACK, but not yet stable
    assert backoff.failures == 4
    assert backoff.failed(110.0) >= 0.5 * 2**5  # a short connection counts as a failure
    backoff.up(200.0)
    backoff.tick(230.0)
    assert backoff.failures == 0
    assert backoff.failed(231.0, longest=True) >= 30.0  # a takeover waits the longest
