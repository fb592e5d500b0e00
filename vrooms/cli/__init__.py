"""The ``vrooms`` command: run the service, manage keys, and administer rooms and users.

``serve`` starts the service (``cli.serve``); admin commands (``cli.admin``) work on the
database directly, through the same services and rules as the REST API, so they need no
running server and no access key.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from vrooms import __version__
from vrooms.cli.admin import admin, print_json
from vrooms.cli.serve import migrate, serve
from vrooms.config import Settings

_SETTINGS_FLAGS = (
    "host",
    "port",
    "data_dir",
    "database_url",
    "tls",
    "workers",
    "log_level",
    "janus_url",
    "calls_enabled",
    "sip_trunk_uri",
    "sip_trunk_username",
    "sip_caller_id",
    "sip_register",
    "sip_listen",
    "sip_trusted_sources",
    "sip_allow_prefixes",
    "rtpengine_url",
    "public_url",
    "cluster",
    "cluster_name",
    "node_name",
    "advertise",
    "metrics_listen",
    "public_ip",
    "turn",
    "turn_host",
)


def _storage_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--data-dir", default=default, help="where keys, certificates and the SQLite database live (VROOMS_DATA_DIR)"
    )
    parser.add_argument(
        "--database-url", default=default, help="e.g. postgresql://user@host/db; default: SQLite in the data dir"
    )


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("several nodes (a PostgreSQL --database-url and a NATS server)")
    group.add_argument("--cluster", help="join the cluster on this NATS server, e.g. nats://10.0.0.5:4222")
    group.add_argument("--cluster-name", help="the cluster's name on that NATS server (default vrooms)")
    group.add_argument("--node-name", help="this node's name in the cluster (default: the host name)")
    group.add_argument("--advertise", help="the URL other nodes reach this node at (default: its own endpoint)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vrooms", description="Self-hosted virtual rooms, ACS-compatible.")
    parser.add_argument("--version", action="version", version=f"vrooms {__version__}")
    _storage_flags(parser, None)
    # Also after the command (`vrooms serve --data-dir D`, `scripts/serve --data-dir D`);
    # SUPPRESS keeps a value given before the command.
    storage = argparse.ArgumentParser(add_help=False)
    _storage_flags(storage, argparse.SUPPRESS)

    def subcommands(of: argparse.ArgumentParser, dest: str, metavar: str) -> Callable[..., argparse.ArgumentParser]:
        """``add_parser`` of a new group of subcommands, each taking the storage flags."""
        group = of.add_subparsers(dest=dest, required=True, metavar=metavar)
        return functools.partial(group.add_parser, parents=[storage])

    add_command = subcommands(parser, "command", "COMMAND")

    serve = add_command("serve", help="run the REST service")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8443)")
    serve.add_argument("--no-tls", dest="tls", action="store_false", default=None, help="serve plain HTTP")
    serve.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--janus-url",
        help="use this Janus (ws://host:port; secrets in VROOMS_JANUS_API_SECRET / VROOMS_JANUS_ADMIN_KEY) "
        "instead of starting one",
    )
    serve.add_argument(
        "--no-calls", dest="calls_enabled", action="store_false", default=None, help="REST only: no call host, no Janus"
    )

    telephony = serve.add_argument_group("telephone legs (SIP trunk; the password only in VROOMS_SIP_TRUNK_PASSWORD)")
    telephony.add_argument("--sip-trunk-uri", help="e.g. sip:127.0.0.1:5070;transport=udp (VROOMS_SIP_TRUNK_URI)")
    telephony.add_argument("--sip-trunk-username", help="digest user name at the trunk")
    telephony.add_argument("--sip-caller-id", help="E.164 number the callee sees")
    telephony.add_argument("--sip-register", action="store_true", default=None, help="REGISTER at the trunk")
    telephony.add_argument("--sip-listen", help="address:port for the trunk's INVITEs (default 127.0.0.1:5060)")
    telephony.add_argument("--sip-trusted-sources", help="comma-separated addresses SIP is taken from")
    telephony.add_argument("--sip-allow-prefixes", help="dial-out prefixes: +44,+1 allow, !+1900 denies")
    telephony.add_argument("--rtpengine-url", help="an external rtpengine (udp:host:port) instead of starting one")

    network = serve.add_argument_group("real networks (TURN, NAT)")
    network.add_argument("--public-ip", help="the address clients reach this machine's media at, behind a NAT")
    network.add_argument("--turn", choices=["off", "embedded", "external"], help="TURN relay (default off)")
    network.add_argument("--turn-host", help="the address or name clients reach TURN at")

    serve.add_argument("--public-url", help="the URL apps reach this server at: Call Automation callbacks' JWT issuer")
    serve.add_argument("--metrics-listen", help="serve /metrics (Prometheus) at address:port, e.g. 127.0.0.1:9464")
    _cluster_flags(serve)

    add_command("migrate", help="bring the database schema up to date")

    cluster = add_command("cluster", help="the nodes of a cluster")
    _cluster_flags(cluster)
    cluster_action = subcommands(cluster, "cluster_command", "ACTION")
    cluster_action("status", help="the nodes, their load and the rooms each holds").add_argument(
        "--json", action="store_true", help="as JSON"
    )
    _cluster_flags(add_command("drain", help="move this node's calls to other nodes, then stop it"))

    keys = add_command("keys", help="show or rotate the access keys")
    keys_action = subcommands(keys, "keys_command", "ACTION")
    show = keys_action("show", help="print both keys and connection strings")
    show.add_argument("--endpoint", help="endpoint for the connection strings (default from host/port)")
    rotate = keys_action("rotate", help="replace one key; running servers pick it up within a second")
    rotate.add_argument("which", choices=["primary", "secondary"])

    rooms = add_command("rooms", help="administer rooms")
    rooms_action = subcommands(rooms, "rooms_command", "ACTION")
    rooms_action("list", help="list rooms")
    create = rooms_action("create", help="create a room")
    create.add_argument("--valid-from", help="RFC 3339, default now")
    create.add_argument("--valid-until", help="RFC 3339, default valid-from + 180 days")
    create.add_argument("--pstn-dial-out", action="store_true", help="allow PSTN dial-out")
    create.add_argument("--participant", action="append", default=[], metavar="RAWID=ROLE")
    rooms_action("show", help="show a room").add_argument("room_id")
    rooms_action("delete", help="delete a room").add_argument("room_id")
    participants = rooms_action("participants", help="list or change a room's roster")
    participants.add_argument("room_id")
    participants.add_argument("--set", action="append", default=[], metavar="RAWID=ROLE", help="add or change")
    participants.add_argument("--remove", action="append", default=[], metavar="RAWID")

    users = add_command("users", help="administer users (identities)")
    users_action = subcommands(users, "users_command", "ACTION")
    users_create = users_action("create", help="create a user")
    users_create.add_argument("--scopes", help="also issue a token with these comma-separated scopes")

    token = add_command("token", help="issue an access token for a user")
    token.add_argument("user_id")
    token.add_argument("--scopes", default="voip", help="comma-separated (default voip)")
    token.add_argument("--minutes", type=int, default=1440, help="60 to 1440 (default 1440)")

    events = add_command("events", help="event subscriptions and dead letters")
    events_action = subcommands(events, "events_command", "ACTION")
    events_action("subscriptions", help="list event subscriptions")
    subscribe = events_action("subscribe", help="create a subscription (runs the endpoint's handshake)")
    subscribe.add_argument("name")
    subscribe.add_argument("endpoint_url")
    subscribe.add_argument("--schema", default="EventGridSchema", help="EventGridSchema or CloudEventSchemaV1_0")
    subscribe.add_argument("--type", action="append", dest="types", help="only this event type (repeatable)")
    subscribe.add_argument("--subject-begins-with")
    subscribe.add_argument("--subject-ends-with")
    subscribe.add_argument("--secret", help="sign deliveries with HMAC-SHA256 (vrooms-signature header)")
    subscribe.add_argument("--max-events-per-batch", type=int, default=1)
    events_action("unsubscribe", help="delete a subscription").add_argument("name")
    dead = events_action("deadletters", help="list dead-lettered deliveries")
    dead.add_argument("--subscription", help="only this subscription (name)")
    dead.add_argument("--limit", type=int, default=1000)
    replay = events_action("replay", help="deliver dead-lettered events again")
    replay.add_argument("--subscription", help="only this subscription (name); default: all")

    oplog = add_command("oplog", help="query the Rooms operation log")
    oplog.add_argument("--room", help="only this room id")
    oplog.add_argument("--operation", help="e.g. CreateRoom, GetRoom, AddParticipants")
    oplog.add_argument("--since", help="RFC 3339 start (inclusive)")
    oplog.add_argument("--until", help="RFC 3339 end (exclusive)")
    oplog.add_argument("--limit", type=int, default=100)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in _SETTINGS_FLAGS if getattr(args, name, None) is not None}
    return Settings(**overrides)


def _running_endpoint(settings: Settings) -> str:
    """The endpoint the last server on this data dir announced, else the one its flags name."""
    try:
        return settings.endpoint_file.read_text().strip() or settings.local_endpoint
    except FileNotFoundError:
        return settings.local_endpoint


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from vrooms.auth.keys import load_or_create, rotate

    if args.keys_command == "rotate":
        try:
            rotate(settings, args.which)
        except RuntimeError as exc:
            print(f"vrooms: {exc}", file=sys.stderr)
            return 2
        if settings.cluster:
            asyncio.run(_publish_keys(settings))
        print(f"Rotated the {args.which} key. Running servers accept the new key within a second.")
    keys = load_or_create(settings)
    endpoint = getattr(args, "endpoint", None) or _running_endpoint(settings)
    if args.keys_command == "show":
        print_json(
            {
                "primaryKey": keys.primary,
                "secondaryKey": keys.secondary,
                "primaryConnectionString": f"endpoint={endpoint};accesskey={keys.primary}",
                "secondaryConnectionString": f"endpoint={endpoint};accesskey={keys.secondary}",
            }
        )
    return 0


async def _publish_keys(settings: Settings) -> None:
    """In a cluster, the rotated keys go to every node (cluster/shared_files.py)."""
    from vrooms.cluster.shared_files import KEYS, publish
    from vrooms.store.database import Database

    database = Database(settings.effective_database_url)
    try:
        await publish(settings, database, KEYS)
    finally:
        await database.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    from vrooms.errors import ApiError
    from vrooms.store.files import seal_data_dir

    seal_data_dir(settings.data_dir)

    try:
        if args.command == "serve":
            return serve(settings, args.access_log)
        if args.command == "migrate":
            asyncio.run(migrate(settings))
            return 0
        if args.command == "keys":
            return _keys(settings, args)
        if args.command in ("cluster", "drain"):
            from vrooms.cli import cluster

            work = cluster.status(settings, args.json) if args.command == "cluster" else cluster.drain(settings)
            return asyncio.run(work)
        return asyncio.run(admin(settings, args))
    except ApiError as error:
        target = f" ({error.target})" if error.target else ""
        print(f"vrooms: {error.message}{target}", file=sys.stderr)
        return 1
