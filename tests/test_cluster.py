"""Several nodes (issue: a cluster on PostgreSQL and NATS): three real nodes, each a whole
``vrooms serve`` with its own Janus, sharing one PostgreSQL database and the machine's NATS.

Clients (the official Azure SDKs, the Python calling SDK) go to different nodes: one service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier

from tests.calls import CallWorld, disconnected, hears
from tests.cluster import Cluster, cluster_of
from tests.servers import create_postgres_database, drop_postgres_database
from vrooms.client import Call


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    database_url = asyncio.run(create_postgres_database())
    with cluster_of(tmp_path_factory.mktemp("cluster"), database_url) as started:
        started.start("a", "b", "c")
        yield started
    asyncio.run(drop_postgres_database(database_url))


@pytest.fixture
async def worlds(cluster: Cluster) -> AsyncIterator[list[CallWorld]]:
    """One CallWorld per node: its SDK clients and calling clients go to that node."""
    made = [CallWorld(node) for node in cluster.nodes]
    yield made
    await asyncio.gather(*(world.close() for world in made))


def _sees(call: Call, others: int) -> bool:
    return len(call.participants) == others


def test_the_nodes_share_keys_tokens_and_the_ca(cluster: Cluster) -> None:
    """A key of node a opens node c (same CA file too); a token issued by b is accepted by a's call host."""
    a, b, c = cluster.nodes
    assert a.keys == b.keys == c.keys
    assert Path(a.ca_path).read_bytes() == Path(c.ca_path).read_bytes()
    identity = CommunicationIdentityClient.from_connection_string(
        f"endpoint={c.endpoint}/;accesskey={a.key}", connection_verify=a.ca_path
    )
    user = identity.create_user()
    assert identity.get_token(user, scopes=["voip"]).token


async def test_participants_joining_through_three_nodes_are_in_one_call(
    cluster: Cluster, worlds: list[CallWorld]
) -> None:
    """Joins through a, b and c meet in one call on one node; each hears the others' tones."""
    on_a, on_b, on_c = worlds
    alice, bob, carol = on_a.user(), on_b.user(), on_c.user()
    room_id = on_b.room({alice: "Presenter", bob: "Attendee", carol: "Attendee"})
    calls = [
        await on_a.join(alice, room_id, tone=440),
        await on_b.join(bob, room_id, tone=660),
        await on_c.join(carol, room_id),
    ]
    assert len({call.id for call in calls}) == 1
    for call in calls:
        await call.wait_until(partial(_sees, call, 2))
    await hears(calls[1], 440)
    await hears(calls[2], 440)
    await hears(calls[2], 660)
    await hears(calls[0], 660)
    assert cluster.holder(room_id) in ("a", "b", "c")


async def test_twenty_joiners_through_three_nodes_at_once_make_one_call(
    cluster: Cluster, worlds: list[CallWorld]
) -> None:
    """The race for an idle room's placement: 20 joins at once through a, b and c, one call."""
    members = [worlds[0].user() for _ in range(20)]
    room_id = worlds[0].room(dict.fromkeys(members, "Attendee"))
    clients = [worlds[i % 3].client(member) for i, member in enumerate(members)]
    calls = await asyncio.gather(*(client.join(room_id) for client in clients))
    assert len({call.id for call in calls}) == 1
    await calls[0].wait_until(lambda: len(calls[0].participants) == 19, timeout=30)
    holders = {node["name"] for node in cluster.status()["nodes"] if room_id in node["rooms"]}
    assert len(holders) == 1


async def test_a_role_change_and_a_revocation_through_another_node_reach_the_call_within_a_second(
    cluster: Cluster, worlds: list[CallWorld]
) -> None:
    """Roster and token changes made through a node that does not hold the call take effect in it."""
    on_a = worlds[0]
    speaker, revoked = on_a.user(), on_a.user()
    room_id = on_a.room({speaker: "Presenter", revoked: "Attendee"})
    call = await on_a.join(speaker, room_id)
    other = await on_a.join(revoked, room_id)
    holder = cluster.holder(room_id)
    through = next(world for world in worlds if world.server.extra_env["VROOMS_NODE_NAME"] != holder)
    started = time.monotonic()
    through.set_role(room_id, speaker, "Attendee")
    await call.wait_until(lambda: call.role == "Attendee", timeout=1.0)
    role_seconds = time.monotonic() - started
    started = time.monotonic()
    through.identity.revoke_tokens(CommunicationUserIdentifier(revoked.raw_id))
    await disconnected(other, timeout=1.0)
    print(f"through a node that is not {holder}: a role change in {role_seconds:.3f} s, ", end="")
    print(f"a revocation in {time.monotonic() - started:.3f} s")


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for one test (it kills or drains nodes)."""
    database_url = asyncio.run(create_postgres_database())
    with cluster_of(tmp_path, database_url) as started:
        yield started
    asyncio.run(drop_postgres_database(database_url))


def _back(call: Call, call_id: str, before: str) -> bool:
    """In the call again as a new participation (the one before went with the node)."""
    return call.state == "Connected" and call.id == call_id and call.participant_id != before


async def test_kill_9_of_the_node_holding_the_call_keeps_the_call(own_cluster: Cluster) -> None:
    """Every process of the room's node killed: each participant is back in the same call, on a survivor."""
    own_cluster.start("a", "b", "c")
    worlds = [CallWorld(node) for node in own_cluster.nodes]
    try:
        members = [worlds[0].user() for _ in range(3)]
        room_id = worlds[0].room({members[0]: "Presenter", members[1]: "Attendee", members[2]: "Attendee"})
        calls = [
            await world.join(member, room_id, tone=440 + 220 * i)
            for i, (world, member) in enumerate(zip(worlds, members, strict=True))
        ]
        call_id = calls[0].id
        await hears(calls[1], 440)
        holder = own_cluster.holder(room_id)
        victim = next(node for node in own_cluster.nodes if node.extra_env["VROOMS_NODE_NAME"] == holder)
        await calls[2].mute()
        before = [call.participant_id for call in calls]
        killed = time.monotonic()
        victim.kill_everything()
        for call, participant_id in zip(calls, before, strict=True):
            await call.wait_until(partial(_back, call, call_id, participant_id), timeout=20)
        back = time.monotonic() - killed
        for call in calls:
            await call.wait_until(partial(_sees, call, 2), timeout=10)
        await hears(calls[1], 440)
        await hears(calls[0], 660)
        assert calls[2].muted
        now = own_cluster.holder(room_id)
        print(f"node {holder} killed: everyone back in call {call_id} after {back:.2f} s, on node {now}")
        assert now not in (None, holder)
    finally:
        await asyncio.gather(*(world.close() for world in worlds))
