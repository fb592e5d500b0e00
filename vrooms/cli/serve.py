"""``vrooms serve``: secrets, migrations and certificates first, then the event dispatcher and the
call host as children (restarted if they die), then the REST workers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time

from pydantic import SecretStr

from vrooms import __version__
from vrooms.config import Settings


def serve(settings: Settings, access_log: bool) -> int:
    from vrooms.auth.callback_tokens import load_or_create_callback_key
    from vrooms.auth.keys import load_or_create
    from vrooms.auth.tokens import load_or_create_resource_id, load_or_create_signing_key
    from vrooms.pstn.config import TelephonyConfigError, telephony
    from vrooms.tls import ensure_certificates

    if "VROOMS_PROMPT_URL_HOSTS" in os.environ:  # replaced: ignoring it would open or close fetches silently
        print("vrooms: VROOMS_PROMPT_URL_HOSTS is now VROOMS_EGRESS_PROMPTS (host names, networks,", file=sys.stderr)
        print("  public, private, loopback; see the README, 'Outbound connections').", file=sys.stderr)
        return 2
    try:  # a wrong telephone setting stops here, not in a call host that restarts forever
        trunk = telephony(settings)
    except TelephonyConfigError as exc:
        print(f"vrooms: {exc}", file=sys.stderr)
        return 2
    if trunk is None:
        print("No SIP trunk (VROOMS_SIP_TRUNK_URI): phone requests will be refused.", file=sys.stderr)
    if settings.cluster and (problem := asyncio.run(_cluster_problem(settings))):
        print(f"vrooms: {problem}", file=sys.stderr)
        return 2
    # Create every shared secret before the workers start, so they never race for it.
    load_or_create(settings)
    load_or_create_signing_key(settings.data_dir)
    load_or_create_resource_id(settings.data_dir)
    load_or_create_callback_key(settings.data_dir)
    if settings.tls:  # the CA (and a server certificate) now: in a cluster, the first node's CA is everyone's
        ensure_certificates(settings.tls_dir, settings.host)
    print(f"vrooms {__version__}: migrating {safe_url(settings.effective_database_url)} ...", file=sys.stderr)
    asyncio.run(migrate(settings))
    if settings.cluster:
        asyncio.run(_share_files(settings))
        threading.Thread(target=_follow_shared_files, args=(settings,), daemon=True).start()
    keys = load_or_create(settings)
    ssl: dict[str, str] = {}
    endpoint = settings.local_endpoint
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

    if settings.metrics_listen:
        from vrooms import metrics

        metrics.prepare(settings.run_dir / "metrics")  # before any process records a sample
        metrics.expose(settings.metrics_listen)
        print(f"Metrics at http://{settings.metrics_listen}/metrics", file=sys.stderr)

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


async def _cluster_problem(settings: Settings) -> str | None:
    """Why this node cannot join its cluster (said before anything starts), or None."""
    from vrooms.cluster.bus import ClusterBus, shown

    if not settings.effective_database_url.startswith("postgresql"):
        return (
            "a cluster keeps its state in PostgreSQL: give every node the same --database-url "
            "postgresql://user@host/db (SQLite is for a single node)."
        )
    bus = ClusterBus(settings.cluster or "", settings.cluster_name, settings.node_name)
    try:
        await bus.connect()
    except Exception as exc:  # nats-py raises several kinds; each means "not reachable"
        problem = exc or type(exc).__name__
        return f"cannot reach the cluster's NATS at {shown(settings.cluster or '')} ({problem}); is it running?"
    await bus.close()
    return None


async def _share_files(settings: Settings) -> None:
    from vrooms.cluster.shared_files import share
    from vrooms.store.database import Database

    database = Database(settings.effective_database_url)
    try:
        if taken := await share(settings, database):
            print(f"Took the cluster's {', '.join(taken)}.", file=sys.stderr)
    finally:
        await database.dispose()


def _follow_shared_files(settings: Settings) -> None:
    """A key rotated on another node is accepted here within about a second (the KeyRing rereads the file)."""
    from vrooms.cluster.shared_files import take_changes
    from vrooms.store.database import Database

    async def follow() -> None:
        database = Database(settings.effective_database_url)
        while True:
            try:
                await take_changes(settings, database)
            except Exception as exc:  # the database restarting, say: try again next second
                print(f"vrooms: could not read the cluster's shared files ({exc}).", file=sys.stderr)
            await asyncio.sleep(1.0)

    asyncio.run(follow())


def _announce_when_ready(settings: Settings, endpoint: str, key: str) -> None:
    """Say the service is ready once its port accepts connections, not before.

    The connection string carries the access key: it goes to a terminal, never to a
    redirected stderr (a log file or the journal), where `vrooms keys show` is the way.
    """
    while True:
        try:
            socket.create_connection((settings.local_host, settings.port), timeout=1).close()
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


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def migrate(settings: Settings) -> None:
    from vrooms.store.database import Database
    from vrooms.store.migrate import upgrade_to_head

    database = Database(settings.effective_database_url)
    try:
        await upgrade_to_head(database)
    finally:
        await database.dispose()
