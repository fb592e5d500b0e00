"""The ``vrooms`` command: run the service, manage keys, and administer rooms and users.

Admin commands work on the database directly (the same services and rules as the
REST API), so they need no running server and no access key.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import SecretStr

from vrooms import __version__
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
)


def _storage_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--data-dir", default=default, help="where keys, certificates and the SQLite database live (VROOMS_DATA_DIR)"
    )
    parser.add_argument(
        "--database-url", default=default, help="e.g. postgresql://user@host/db; default: SQLite in the data dir"
    )


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

    serve.add_argument("--public-url", help="the URL apps reach this server at: Call Automation callbacks' JWT issuer")

    add_command("migrate", help="bring the database schema up to date")

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


def _print_json(value: Any) -> None:
    from vrooms.api.responses import dumps

    print(dumps(value, indent=True).decode())


def _local_host(settings: Settings) -> str:
    """The address a client on this machine reaches the service at (not a wildcard)."""
    return "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host


def _endpoint(settings: Settings) -> str:
    host = _local_host(settings)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if settings.tls else 'http'}://{host}:{settings.port}/"


def _serve(settings: Settings, access_log: bool) -> int:
    from vrooms.auth.callback_tokens import load_or_create_callback_key
    from vrooms.auth.keys import load_or_create
    from vrooms.auth.tokens import load_or_create_resource_id, load_or_create_signing_key
    from vrooms.pstn.config import TelephonyConfigError, telephony
    from vrooms.tls import ensure_certificates

    try:  # a wrong telephone setting stops here, not in a call host that restarts forever
        trunk = telephony(settings)
    except TelephonyConfigError as exc:
        print(f"vrooms: {exc}", file=sys.stderr)
        return 2
    if trunk is None:
        print("No SIP trunk (VROOMS_SIP_TRUNK_URI): phone requests will be refused.", file=sys.stderr)
    # Create every shared secret before the workers start, so they never race for it.
    keys = load_or_create(settings)
    load_or_create_signing_key(settings.data_dir)
    load_or_create_resource_id(settings.data_dir)
    load_or_create_callback_key(settings.data_dir)
    print(f"vrooms {__version__}: migrating {_safe_url(settings.effective_database_url)} ...", file=sys.stderr)
    asyncio.run(_migrate(settings))
    ssl: dict[str, str] = {}
    endpoint = _endpoint(settings)
    print(f"Serving the Rooms and Identity APIs at {endpoint} with {settings.workers} worker(s).", file=sys.stderr)
    if settings.tls:
        files = ensure_certificates(settings.tls_dir, settings.host)
        ssl = {"ssl_certfile": str(files.server_cert), "ssl_keyfile": str(files.server_key)}
        print(f"TLS CA certificate: {files.ca_cert}", file=sys.stderr)
        print(f"  Python SDK clients trust it with: export REQUESTS_CA_BUNDLE={files.ca_cert}", file=sys.stderr)
    settings.endpoint_file.write_text(endpoint)  # for `vrooms keys show`, whatever its flags
    # Workers are new processes: hand them the settings through the environment. Secrets
    # came from the environment already (they have no flags) and stay as they are there.
    for name, value in settings.model_dump().items():
        if value is not None and not isinstance(value, SecretStr):
            # Structured settings go as JSON, which is how pydantic-settings reads them back.
            os.environ[f"VROOMS_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    from vrooms.launcher import ChildProcess

    children = [ChildProcess("vrooms.events.dispatcher", "event dispatcher")]
    if settings.calls_enabled:
        children.append(ChildProcess("vrooms.calls.host", "call host", settings.signaling_socket))
        print(f"Room calls: signaling at {endpoint.replace('http', 'ws', 1)}calling/v1", file=sys.stderr)
    for child in children:
        child.start()
    threading.Thread(target=_announce_when_ready, args=(settings, endpoint, keys.primary), daemon=True).start()
    try:
        _run_workers(settings, access_log, ssl)
    finally:
        for child in children:
            child.stop()
    return 0


def _announce_when_ready(settings: Settings, endpoint: str, key: str) -> None:
    """Say the service is ready once its port accepts connections, not before.

    The connection string carries the access key: it goes to a terminal, never to a
    redirected stderr (a log file or the journal), where `vrooms keys show` is the way.
    """
    while True:
        try:
            socket.create_connection((_local_host(settings), settings.port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    print(f"Ready at {endpoint}", file=sys.stderr)
    if sys.stderr.isatty():
        print(f"Connection string: endpoint={endpoint};accesskey={key}", file=sys.stderr)
    else:
        print("Connection string: run `vrooms keys show` (the key is not written to logs)", file=sys.stderr)


def _run_workers(settings: Settings, access_log: bool, ssl: dict[str, str]) -> None:
    import uvicorn

    from vrooms.calls.protocol import MAX_FRAME_BYTES
    from vrooms.logs import uvicorn_log_config

    uvicorn.run(
        "vrooms.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings.log_level),
        access_log=access_log,
        http="vrooms.api.connection:BoundedHttpProtocol",
        ws_max_size=MAX_FRAME_BYTES,
        # Idle keep-alive clients must not hold a restart hostage.
        timeout_graceful_shutdown=5,
        **ssl,  # type: ignore[arg-type]
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def _migrate(settings: Settings) -> None:
    from vrooms.store.database import Database
    from vrooms.store.migrate import upgrade_to_head

    database = Database(settings.effective_database_url)
    try:
        await upgrade_to_head(database)
    finally:
        await database.dispose()


def _parse_role_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        raw_id, sep, role = pair.rpartition("=")
        if not sep:
            raise SystemExit(f"vrooms: expected RAWID=ROLE, got '{pair}' (e.g. 8:acs:...=Presenter)")
        result[raw_id] = {"role": role}
    return result


async def _admin(settings: Settings, args: argparse.Namespace) -> int:
    """Run one admin command through the same parsing and rules as the REST API."""
    from vrooms.app import build_services
    from vrooms.identity import schemas as identity_schemas
    from vrooms.oplog import repository as oplog_repository
    from vrooms.store.migrate import upgrade_to_head

    services = build_services(settings)
    try:
        await upgrade_to_head(services.database)
        db = services.database
        if args.command == "rooms":
            await _rooms(services, args)
        elif args.command == "users":
            request = identity_schemas.parse_create(
                {"createTokenWithScopes": args.scopes.split(",")} if args.scopes else {}
            )
            user_id, token = await services.user_commands.create(request)
            output: dict[str, Any] = {"identity": {"id": user_id}}
            if token:
                output["accessToken"] = identity_schemas.token_to_wire(*token)
            _print_json(output)
        elif args.command == "token":
            request = identity_schemas.parse_issue({"scopes": args.scopes.split(","), "expiresInMinutes": args.minutes})
            async with db.read() as conn:
                token = await services.identity.issue_token(
                    conn, identity_schemas.check_identity_id(args.user_id), request
                )
            _print_json(identity_schemas.token_to_wire(*token))
        elif args.command == "events":
            await _events(services, args)
        elif args.command == "oplog":
            from vrooms.api.times import format_rfc3339, parse_rfc3339

            async with db.read() as conn:
                records = await oplog_repository.query(
                    conn,
                    room_id=args.room,
                    operation=args.operation,
                    since=parse_rfc3339(args.since, "--since") if args.since else None,
                    until=parse_rfc3339(args.until, "--until") if args.until else None,
                    limit=args.limit,
                )
            for record in records:
                row = record.as_row()
                row["time_generated"] = format_rfc3339(record.time_generated)
                print(json.dumps(row))
        return 0
    finally:
        await services.database.dispose()


async def _rooms(services: Any, args: argparse.Namespace) -> None:
    """Rooms commands; the ones that change something are in the operation log, as over REST."""
    from vrooms.oplog.records import Operation
    from vrooms.rooms import schemas

    version, db, rooms = schemas.V2025_03_13, services.database, services.rooms
    if args.rooms_command == "list":
        async with db.read() as conn:
            after, listed = 0, []
            while True:
                page, more = await rooms.list_rooms(conn, after_seq=after, limit=500)
                listed += [schemas.room_to_wire(room) for room in page]
                if not more:
                    break
                after = page[-1].seq
        _print_json(listed)
    elif args.rooms_command == "create":
        participants = _parse_role_pairs(args.participant)
        body = {
            "validFrom": args.valid_from,
            "validUntil": args.valid_until,
            "pstnDialOutEnabled": args.pstn_dial_out,
            "participants": participants,
        }
        new = schemas.parse_new_room(body, version)
        await _refuse_unknown_users(services, list(participants))
        room = await services.room_commands.create(new)
        record = _cli_record(Operation.CREATE_ROOM)
        record.describe_room(room)
        record.added_participants_count = len(new.participants)
        await _log(services, record)
        _print_json(schemas.room_to_wire(room))
    elif args.rooms_command == "show":
        async with db.read() as conn:
            room, roster, _ = await rooms.list_participants(
                conn, schemas.check_room_id(args.room_id), after_raw_id="", limit=100_000
            )
        _print_json({**schemas.room_to_wire(room), "participants": [schemas.participant_to_wire(p) for p in roster]})
    elif args.rooms_command == "delete":
        room_id = schemas.check_room_id(args.room_id)
        await services.room_commands.delete(room_id)
        record = _cli_record(Operation.DELETE_ROOM)
        record.room_id = room_id
        await _log(services, record)
        print(f"Deleted room {room_id}.")
    elif args.rooms_command == "participants":
        await _participants(services, args)


async def _participants(services: Any, args: argparse.Namespace) -> None:
    from vrooms.oplog.records import Operation
    from vrooms.rooms import schemas

    db, room_id = services.database, schemas.check_room_id(args.room_id)
    added = _parse_role_pairs(args.set)
    if changes := added | dict.fromkeys(args.remove):
        parsed = schemas.parse_roster_changes({"participants": changes}, schemas.V2025_03_13)
        await _refuse_unknown_users(services, list(added))
        change = await services.room_commands.change_roster(room_id, parsed)
        record = _cli_record(Operation.ADD_PARTICIPANTS)
        record.describe_roster_change(change)
        await _log(services, record)
    async with db.read() as conn:
        _, roster, _ = await services.rooms.list_participants(conn, room_id, after_raw_id="", limit=100_000)
    _print_json([schemas.participant_to_wire(p) for p in roster])


async def _refuse_unknown_users(services: Any, raw_ids: list[str]) -> None:
    """REST takes any well-formed raw id, as ACS does; an operator typing one means a user."""
    async with services.database.read() as conn:
        unknown = await services.identity.unknown(conn, raw_ids)
    if unknown:
        raise SystemExit(f"vrooms: no such user: {', '.join(unknown)} (create one with `vrooms users create`)")


def _cli_record(operation: Any) -> Any:
    import uuid

    from vrooms.api.times import now_micros
    from vrooms.oplog.records import OperationRecord
    from vrooms.rooms.schemas import V2025_03_13

    return OperationRecord(now_micros(), operation.value, V2025_03_13, correlation_id=f"cli-{uuid.uuid4()}")


async def _log(services: Any, record: Any) -> None:
    services.oplog.append(record)
    await services.oplog.flush()


async def _events(services: Any, args: argparse.Namespace) -> None:
    from vrooms.events import repository, schemas

    db = services.database
    if args.events_command == "subscriptions":
        async with db.read() as conn:
            _print_json([schemas.subscription_to_wire(s) for s in await repository.list_subscriptions(conn)])
    elif args.events_command == "subscribe":
        body: dict[str, Any] = {
            "endpointUrl": args.endpoint_url,
            "eventDeliverySchema": args.schema,
            "includedEventTypes": args.types,
            "subjectBeginsWith": args.subject_begins_with,
            "subjectEndsWith": args.subject_ends_with,
            "secret": args.secret,
            "maxEventsPerBatch": args.max_events_per_batch,
        }
        new = schemas.parse_subscription(args.name, body)
        _print_json(schemas.subscription_to_wire(await services.events.subscribe(db, new)))
    elif args.events_command == "unsubscribe":
        async with db.write() as conn:
            await services.events.delete(conn, args.name)
        print(f"Deleted event subscription {args.name}.")
    elif args.events_command == "deadletters":
        async with db.read() as conn:
            subscription_id = (await services.events.get(conn, args.subscription)).id if args.subscription else None
            rows = await repository.dead_letters(conn, subscription_id, args.limit)
        _print_json([schemas.dead_letter_to_wire(row) for row in rows])
    elif args.events_command == "replay":
        async with db.write() as conn:
            count = await services.events.replay(conn, args.subscription)
        print(f"Replayed {count} dead-lettered deliveries; the dispatcher sends them within a second.")


def _running_endpoint(settings: Settings) -> str:
    """The endpoint the last server on this data dir announced, else the one its flags name."""
    try:
        return settings.endpoint_file.read_text().strip() or _endpoint(settings)
    except FileNotFoundError:
        return _endpoint(settings)


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from vrooms.auth.keys import load_or_create, rotate

    if args.keys_command == "rotate":
        try:
            rotate(settings, args.which)
        except RuntimeError as exc:
            print(f"vrooms: {exc}", file=sys.stderr)
            return 2
        print(f"Rotated the {args.which} key. Running servers accept the new key within a second.")
    keys = load_or_create(settings)
    endpoint = getattr(args, "endpoint", None) or _running_endpoint(settings)
    if args.keys_command == "show":
        _print_json(
            {
                "primaryKey": keys.primary,
                "secondaryKey": keys.secondary,
                "primaryConnectionString": f"endpoint={endpoint};accesskey={keys.primary}",
                "secondaryConnectionString": f"endpoint={endpoint};accesskey={keys.secondary}",
            }
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    from vrooms.errors import ApiError
    from vrooms.store.files import seal_data_dir

    seal_data_dir(settings.data_dir)

    try:
        if args.command == "serve":
            return _serve(settings, args.access_log)
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
            return 0
        if args.command == "keys":
            return _keys(settings, args)
        return asyncio.run(_admin(settings, args))
    except ApiError as error:
        target = f" ({error.target})" if error.target else ""
        print(f"vrooms: {error.message}{target}", file=sys.stderr)
        return 1
