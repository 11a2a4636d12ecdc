"""`pole-agent centre migrate` and `pole-agent centre ingest`."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from agent import credentials

__all__ = ["access_args", "broker_access", "host_port", "register"]

log = logging.getLogger(__name__)


def _cmd_migrate(args: argparse.Namespace) -> int:
    from agent.centre.ingest.migrate import available, migrate

    done = migrate(args.db)
    for m in done:
        print(f"applied {m.version:03d}_{m.name}")
    latest = available()[-1].version if available() else 0
    print(f"schema at version {latest:03d} ({len(done)} applied now)")
    return 0


def host_port(text: str) -> tuple[str, int]:
    """``host:port`` for argparse (``--broker``, ``--listen``)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host, int(port)


def broker_access(args: argparse.Namespace) -> Any:
    """The BrokerAccess of ``--broker`` and the flags of :func:`access_args`."""
    from agent.centre.sender import BrokerAccess

    password = None
    if args.password_file:
        password = credentials.read_text(args.password_file, "password")
    host, port = args.broker or ("127.0.0.1", 1883)  # --nats: unused, but typed
    return BrokerAccess(host, port, args.username, password, args.ca, args.cert, args.key)


def access_args(p: argparse.ArgumentParser) -> None:
    """The centre's account on the broker: user, password file, TLS files."""
    p.add_argument("--username", help="MQTT user name")
    p.add_argument("--password-file", help="file holding the MQTT password")
    p.add_argument("--ca", help="CA certificate for TLS")
    p.add_argument("--cert", help="client certificate for TLS")
    p.add_argument("--key", help="client key for TLS")


def _nats_servers(text: str) -> tuple[str, ...]:
    """``nats://a:4222,nats://b:4222`` (or ``a:4222,b:4222``): every node of the cluster."""
    urls = []
    for part in (p.strip() for p in text.split(",")):
        url = part if "://" in part else f"nats://{part}"
        host_port(url.partition("://")[2])  # host:port, or ArgumentTypeError
        urls.append(url)
    if not urls:
        raise argparse.ArgumentTypeError("expected nats://host:port[,nats://host:port...]")
    return tuple(urls)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _cmd_ingest(args: argparse.Namespace) -> int:
    if args.workers > 1:
        return _supervise(args)
    from agent.centre.ingest.worker import IngestSettings, IngestWorker

    settings = IngestSettings(
        db=args.db,
        access=broker_access(args),
        group=args.group, index=args.index, prefix=args.prefix, batch_max=args.batch,
        batch_wait_s=args.batch_ms / 1000,
        inflight=args.inflight or (20000 if args.nats else 2000),
        reorder_window_s=args.reorder_window, silent_after_s=args.silent_after,
        nats=args.nats or (), ack_wait_s=args.ack_wait,
    )  # fmt: skip
    worker: Any
    if settings.nats:
        from agent.centre.ingest.natsworker import NatsIngestWorker

        worker = NatsIngestWorker(settings)
    else:
        worker = IngestWorker(settings)
    stop = _stop_on_signals()
    stats = threading.Thread(target=_report, args=(worker, stop), name="ingest-stats", daemon=True)
    stats.start()
    counts = worker.run(stop)
    log.info("%s stopped: %s", settings.client_id, counts)
    return 0


def _report(worker: Any, stop: threading.Event, every: float = 10.0) -> None:
    last = 0
    while not stop.wait(every):
        c = worker.counts
        log.info(
            "%s: %.0f events/s, %d stored, %d duplicates, %d rejected, %d retries",
            worker.s.client_id, (c.events - last) / every, c.events, c.duplicates, c.rejected,
            c.retries,
        )  # fmt: skip
        last = c.events


def _supervise(args: argparse.Namespace) -> int:
    """--workers N: N child processes (indexes index..index+N-1), each restarted if it dies."""
    argv = [a for a in sys.argv[1:] if a != "-v"]
    base = [sys.executable, "-m", "agent", *(["-v"] if args.verbose else []), *argv]
    stop = _stop_on_signals()

    def spawn(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*base, "--workers", "1", "--index", str(args.index + i)])

    children = [spawn(i) for i in range(args.workers)]
    print(f"ingest: {args.workers} workers, pids {[c.pid for c in children]}", flush=True)
    while not stop.wait(1.0):
        for i, child in enumerate(children):
            if child.poll() is not None:
                log.warning("ingest worker %d exited with %s; restarting", i, child.returncode)
                time.sleep(1.0)
                children[i] = spawn(i)
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(
        "centre", help="the control centre: database migrate, ingest, operators' console, users"
    )
    csub = c.add_subparsers(dest="centre_cmd", required=True, metavar="ACTION")
    p = csub.add_parser(
        "migrate",
        help="create or upgrade the centre's PostgreSQL tables (idempotent)",
        description="Apply the versioned SQL migrations that this database lacks, in order.",
    )
    p.add_argument("--db", required=True, help="PostgreSQL URL, postgresql://user@host/db")
    p.set_defaults(func=_cmd_migrate)

    p = csub.add_parser(
        "ingest",
        help="store every pole's messages in PostgreSQL (scales out: shared subscription)",
        description="Consume <prefix>/+/+/# through the MQTT 5 shared subscription "
        "$share/GROUP/... (--broker), or through the durable JetStream consumer ingest-GROUP "
        "on the stream NATS' MQTT layer fills (--nats); write in batches, acknowledge after "
        "commit. Run several (on one host with --workers, or on several hosts with distinct "
        "--index) to share the load.",
    )
    p.add_argument("--db", required=True, help="PostgreSQL URL")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--broker", type=host_port, help="host:port of an MQTT 5 broker")
    src.add_argument(
        "--nats", type=_nats_servers, metavar="URL[,URL...]",
        help="NATS cluster nodes (nats://host:port, the client port, not MQTT's): consume "
        "the JetStream stream $MQTT_msgs that NATS' MQTT listener fills",
    )  # fmt: skip
    p.add_argument("--group", default="ingest", help="shared subscription group (default ingest)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--index", type=int, default=0, help="first worker index: client id ingest-GROUP-INDEX"
    )
    p.add_argument("--prefix", default="pole", help="topic prefix (default pole)")
    p.add_argument("--batch", type=int, default=500, help="rows per transaction at most")
    p.add_argument("--batch-ms", type=float, default=50.0, help="wait for a batch (ms, 50)")
    p.add_argument(
        "--inflight", type=int, default=None,
        help="unacknowledged messages at most: per worker on MQTT (default 2000), for the "
        "whole group's consumer on NATS (default 20000)",
    )  # fmt: skip
    p.add_argument(
        "--ack-wait", type=float, default=30.0, metavar="S",
        help="NATS: a message not acknowledged within S seconds is delivered again (30)",
    )  # fmt: skip
    p.add_argument(
        "--reorder-window", type=float, default=30.0, metavar="S",
        help="a missing seq is lost only after S seconds (default 30)",
    )  # fmt: skip
    p.add_argument(
        "--silent-after", type=float, default=90.0, metavar="S",
        help="a pole whose last heartbeat came more than max(S, 3 heartbeat periods, learnt "
        "from its heartbeats) ago is offline, why silent (default 90)",
    )  # fmt: skip
    access_args(p)
    p.set_defaults(func=_cmd_ingest)

    from agent.centre.console import cli as console_cli

    console_cli.register(csub)
