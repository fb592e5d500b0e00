"""What every request handler can reach: settings, database, keys and the domain services."""

from __future__ import annotations

from dataclasses import dataclass

from vrooms.auth.callback_tokens import CallbackSigner
from vrooms.auth.keys import KeyRing
from vrooms.auth.tokens import TokenIssuer
from vrooms.automation.relay import AutomationRelay
from vrooms.calls.notify import CallNotifier
from vrooms.cluster.automation_relay import ClusterAutomationRelay
from vrooms.cluster.bus import ClusterBus
from vrooms.cluster.notices import BusNotices
from vrooms.cluster.placement import RoomPlacement
from vrooms.config import Settings
from vrooms.events.service import EventsService
from vrooms.identity.commands import UserCommands
from vrooms.identity.service import IdentityService
from vrooms.oplog.repository import OperationLogWriter
from vrooms.rooms.commands import RoomCommands
from vrooms.rooms.service import RoomsService
from vrooms.store.database import Database


@dataclass
class Services:
    settings: Settings
    database: Database
    # The cluster's bus (NATS) and where rooms' calls live, when this node is one of several.
    bus: ClusterBus | None
    placement: RoomPlacement | None
    keyring: KeyRing
    tokens: TokenIssuer
    rooms: RoomsService
    identity: IdentityService
    oplog: OperationLogWriter
    # Tells the call host(s) about roster, room and identity changes (fire-and-forget).
    calls: CallNotifier | BusNotices
    # Changes that live calls must learn of, as the REST API and the CLI both make them.
    room_commands: RoomCommands
    user_commands: UserCommands
    events: EventsService
    # Call Automation requests go to the call host; callbacks are signed with this key.
    automation: AutomationRelay | ClusterAutomationRelay
    callback_signer: CallbackSigner
