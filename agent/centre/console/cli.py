"""`pole-agent centre console` and `pole-agent centre users add|list`."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import secrets
import sys
from pathlib import Path

__all__ = ["register"]

log = logging.getLogger(__name__)
DEFAULT_USERS = "console-users.txt"


def _cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from agent.centre.console.app import ConsoleServer, ConsoleSettings, create_app
    from agent.centre.console.commands import Commander
    from agent.centre.console.users import UsersFile
    from agent.centre.ingest.cli import broker_access
    from agent.errors import UserError

    users = Path(args.users)
    if not len(UsersFile(users)):
        raise UserError(
            f"{users}: no operator yet; add one with "
            f"pole-agent centre users add NAME --role operator --users {users}"
        )
    secret = secrets.token_urlsafe(32)
    if args.secret_file:
        secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
    commander = Commander(
        broker_access(args),
        prefix=args.prefix, key_file=args.key_file, key_dir=args.key_dir,
        v5=args.protocol == "5", timeout_s=args.command_timeout,
        site_key_file=args.site_key_file,
    )  # fmt: skip
    settings = ConsoleSettings(
        db=args.db, users=users, commander=commander, secret=secret, tiles=args.tiles,
        silent_after_s=args.silent_after, secure_cookies=args.secure_cookies,
        idle_s=args.session_hours * 3600, absolute_s=args.session_max_hours * 3600,
    )  # fmt: skip
    lhost, lport = args.listen
    print(f"console: http://{lhost}:{lport}/ (operators in {users})", flush=True)
    app = create_app(settings)
    config = uvicorn.Config(app, host=lhost, port=lport, log_level="warning",
                            proxy_headers=True, forwarded_allow_ips=args.trusted_proxy)  # fmt: skip
    server = ConsoleServer(config, app.state.console.hub)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop, as uvicorn.run
        server.run()
    return 0 if server.started else 3  # uvicorn's STARTUP_FAILURE (its error is logged)


def _cmd_users_add(args: argparse.Namespace) -> int:
    from agent.centre.console.users import add_user
    from agent.errors import UserError

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    new = add_user(Path(args.users), args.name, args.role, password)
    print(f"{'added' if new else 'updated'} {args.name} ({args.role}) in {args.users}")
    return 0


def _cmd_users_list(args: argparse.Namespace) -> int:
    from agent.centre.console.users import UsersFile

    users = UsersFile(Path(args.users))
    for name in users.names():
        user = users.get(name)
        print(f"{name}\t{user.role if user else '?'}")
    return 0


def register(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``console`` and ``users`` under ``pole-agent centre``."""
    from agent.centre.ingest.cli import access_args, host_port

    p = csub.add_parser(
        "console",
        help="the operators' web console: alarm board, poles, events, lookout",
        description="Serve the console over plain HTTP on --listen (localhost by default; put "
        "TLS in front with a reverse proxy, docs/centre.md). Reads the ingest's PostgreSQL, "
        "sends signed bell-ack commands and lookouts through --broker.",
    )
    p.add_argument("--db", required=True, help="PostgreSQL URL (the ingest's database)")
    p.add_argument("--broker", required=True, type=host_port, help="host:port of the broker")
    p.add_argument("--listen", type=host_port, default=("127.0.0.1", 8080),
                   help="host:port to serve on (default 127.0.0.1:8080)")  # fmt: skip
    p.add_argument("--users", default=DEFAULT_USERS, help=f"operators file ({DEFAULT_USERS})")
    p.add_argument("--key-file", help="command key for every pole (64 hex digits)")
    p.add_argument("--key-dir", help="folder of per-pole command keys, DEVICE.key (and the "
                   "site keys of several sites, SITE.site.key)")  # fmt: skip
    p.add_argument("--site-key-file", help="the site key (64 hex digits) that signs lookouts "
                   "broadcast to every pole of the site, as `lookout send --key-file`")  # fmt: skip
    p.add_argument("--prefix", default="pole", help="topic prefix (default pole)")
    p.add_argument("--tiles", help="map tile URL template, e.g. http://tiles/{z}/{x}/{y}.png")
    p.add_argument("--silent-after", type=float, default=90.0, metavar="S",
                   help="show a pole offline (silent) unheard for S seconds (90)")  # fmt: skip
    p.add_argument("--session-hours", type=float, default=8.0,
                   help="a session ends after this long without a request (8)")  # fmt: skip
    p.add_argument("--session-max-hours", type=float, default=12.0,
                   help="and this long after the login, whatever happens (12)")  # fmt: skip
    p.add_argument("--secret-file", help="cookie signing secret (default: random per start)")
    p.add_argument("--secure-cookies", action="store_true",
                   help="mark the session cookie Secure (behind a TLS proxy)")  # fmt: skip
    p.add_argument("--trusted-proxy", default="127.0.0.1",
                   help="address of the reverse proxy whose X-Forwarded-* to trust")  # fmt: skip
    p.add_argument("--command-timeout", type=float, default=10.0,
                   help="seconds to wait for a pole's cmd-result (10)")  # fmt: skip
    p.add_argument("--protocol", choices=["5", "3.1.1"], default="5", help="MQTT version")
    access_args(p)
    p.set_defaults(func=_cmd_console)

    u = csub.add_parser("users", help="the console's operators: add, list")
    usub = u.add_subparsers(dest="users_cmd", required=True, metavar="ACTION")
    a = usub.add_parser("add", help="add an operator or change one's role and password",
                        description="The password is prompted for, or read from stdin's first "
                        "line when stdin is not a terminal. Hashed with argon2id.")  # fmt: skip
    a.add_argument("name")
    a.add_argument("--role", choices=["viewer", "operator", "admin"], required=True)
    a.add_argument("--users", default=DEFAULT_USERS, help=f"operators file ({DEFAULT_USERS})")
    a.set_defaults(func=_cmd_users_add)
    ls = usub.add_parser("list", help="the operators and their roles")
    ls.add_argument("--users", default=DEFAULT_USERS, help=f"operators file ({DEFAULT_USERS})")
    ls.set_defaults(func=_cmd_users_list)
