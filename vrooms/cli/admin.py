"""Admin commands (rooms, users, tokens, events, the operation log) on the database directly,
through the same parsing, services and rules as the REST API."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from vrooms.config import Settings


def print_json(value: Any) -> None:
    from vrooms.api.responses import dumps

    print(dumps(value, indent=True).decode())


def _parse_role_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        raw_id, sep, role = pair.rpartition("=")
        if not sep:
            raise SystemExit(f"vrooms: expected RAWID=ROLE, got '{pair}' (e.g. 8:acs:...=Presenter)")
        result[raw_id] = {"role": role}
    return result


async def admin(settings: Settings, args: argparse.Namespace) -> int:
    """Run one admin command through the same parsing and rules as the REST API."""
    from vrooms.app import build_services
    from vrooms.identity import schemas as identity_schemas
    from vrooms.oplog import repository as oplog_repository
    from vrooms.store.migrate import upgrade_to_head

    services = build_services(settings)
    try:
        if services.bus is not None:  # a change made here reaches the live calls on every node
            await services.bus.connect()
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
            print_json(output)
        elif args.command == "token":
            request = identity_schemas.parse_issue({"scopes": args.scopes.split(","), "expiresInMinutes": args.minutes})
            async with db.read() as conn:
                token = await services.identity.issue_token(
                    conn, identity_schemas.check_identity_id(args.user_id), request
                )
            print_json(identity_schemas.token_to_wire(*token))
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
        if services.bus is not None:
            await services.bus.close()
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
        print_json(listed)
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
        print_json(schemas.room_to_wire(room))
    elif args.rooms_command == "show":
        async with db.read() as conn:
            room, roster, _ = await rooms.list_participants(
                conn, schemas.check_room_id(args.room_id), after_raw_id="", limit=100_000
            )
        print_json({**schemas.room_to_wire(room), "participants": [schemas.participant_to_wire(p) for p in roster]})
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
    print_json([schemas.participant_to_wire(p) for p in roster])


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
            print_json([schemas.subscription_to_wire(s) for s in await repository.list_subscriptions(conn)])
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
        print_json(schemas.subscription_to_wire(await services.events.subscribe(db, new)))
    elif args.events_command == "unsubscribe":
        async with db.write() as conn:
            await services.events.delete(conn, args.name)
        print(f"Deleted event subscription {args.name}.")
    elif args.events_command == "deadletters":
        async with db.read() as conn:
            subscription_id = (await services.events.get(conn, args.subscription)).id if args.subscription else None
            rows = await repository.dead_letters(conn, subscription_id, args.limit)
        print_json([schemas.dead_letter_to_wire(row) for row in rows])
    elif args.events_command == "replay":
        async with db.write() as conn:
            count = await services.events.replay(conn, args.subscription)
        print(f"Replayed {count} dead-lettered deliveries; the dispatcher sends them within a second.")
