"""coturn, the TURN relay, run by the call host beside Janus: configured, probed, restarted.

The configuration makes it anything but an open relay: credentials only by the shared secret
(``media.turn``), and relaying only to the media servers of this deployment (every peer
address is denied but the ones given, Janus's; no TCP relay, no multicast). TLS uses the
deployment's certificate. It is probed with a STUN Binding request every half second
(``supervision.heartbeat``): a coturn that stops answering (a hang) is restarted like one that
exits. The relay ports come from their own range (``relay_ports``), apart from Janus's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from vrooms.processes import stop_process, tied_to_parent
from vrooms.store.files import DIRECTORY_MODE, write_private
from vrooms.supervision import Backoff, heartbeat

log = logging.getLogger("vrooms.media")

_READY_SECONDS = 10.0
_MAGIC_COOKIE = 0x2112A442
_BINDING_REQUEST, _BINDING_SUCCESS = 0x0001, 0x0101


@dataclass(frozen=True)
class CoturnConfig:
    folder: Path
    port: int
    tls_port: int | None
    relay_ports: tuple[int, int]
    secret: bytes
    # The only addresses it relays to: the deployment's media servers.
    peers: tuple[str, ...]
    certificate: tuple[Path, Path] | None = None  # (chain, key) for TLS
    # Behind a NAT: the public address its relayed addresses are announced with.
    external_ip: str | None = None
    realm: str = "vrooms"

    def text(self) -> str:
        lines = [
            f"listening-port={self.port}",
            f"min-port={self.relay_ports[0]}",
            f"max-port={self.relay_ports[1]}",
            "use-auth-secret",
            f"static-auth-secret={self.secret.decode()}",
            f"realm={self.realm}",
            "fingerprint",
            "no-cli",
            "no-tcp-relay",
            "no-multicast-peers",
            "no-software-attribute",
            "no-rfc5780",
            "stale-nonce=600",
            "user-quota=12",
            "total-quota=1200",
            "denied-peer-ip=0.0.0.0-255.255.255.255",
            "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            *(f"allowed-peer-ip={peer}" for peer in self.peers),
            f"pidfile={self.folder / 'turnserver.pid'}",
            f"log-file={self.folder / 'turn.log'}",
            "simple-log",
            "no-stdout-log",
        ]
        if self.external_ip is not None:
            lines.append(f"external-ip={self.external_ip}")
        if self.tls_port is not None and self.certificate is not None:
            chain, key = self.certificate
            lines += [f"tls-listening-port={self.tls_port}", f"cert={chain}", f"pkey={key}", "no-tlsv1", "no-tlsv1_1"]
        else:
            lines += ["no-tls", "no-dtls"]
        return "\n".join(lines) + "\n"


class CoturnProcess:
    def __init__(self, binary: str, config: CoturnConfig) -> None:
        self.binary = binary
        self.config = config
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        folder = self.config.folder
        folder.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        path = folder / "turnserver.conf"
        write_private(path, self.config.text().encode())  # it holds the secret
        command = [self.binary, "-c", str(path), "--no-stdout-log"]
        self.process = await asyncio.create_subprocess_exec(
            *tied_to_parent(command), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
        )
        deadline = asyncio.get_running_loop().time() + _READY_SECONDS
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"coturn exited with status {self.process.returncode}; see {folder}/turn.log")
            try:
                await asyncio.wait_for(stun_probe("127.0.0.1", self.config.port), 0.5)
                break
            except (TimeoutError, OSError):
                if asyncio.get_running_loop().time() > deadline:
                    await self.stop()
                    raise RuntimeError(f"coturn did not answer STUN within {_READY_SECONDS} s") from None
        log.info("coturn started (pid %d, port %d)", self.process.pid, self.config.port)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> None:
        await stop_process(self.process)


class _Binding(asyncio.DatagramProtocol):
    def __init__(self, transaction: bytes) -> None:
        self.transaction = transaction
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        if len(data) >= 20 and data[8:20] == self.transaction and not self.answered.done():
            kind = struct.unpack("!H", data[:2])[0]
            if kind == _BINDING_SUCCESS:
                self.answered.set_result(None)


async def stun_probe(host: str, port: int) -> None:
    """One STUN Binding request (RFC 8489, 6.1) answered with a success: the server works.
    Without a timeout of its own (the caller's ``wait_for`` or heartbeat gives one)."""
    transaction = os.urandom(12)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: _Binding(transaction), remote_addr=(host, port))
    try:
        transport.sendto(struct.pack("!HHI", _BINDING_REQUEST, 0, _MAGIC_COOKIE) + transaction)
        await protocol.answered
    finally:
        transport.close()


async def keep_coturn(process: CoturnProcess) -> None:
    """Run coturn until cancelled: restarted when it exits or stops answering STUN (backing off)."""
    backoff = Backoff()
    try:
        while True:
            try:
                await process.start()
            except (OSError, RuntimeError) as exc:
                delay = backoff.next()
                log.error("coturn unavailable: %s (retrying in %.1f s)", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            probe = asyncio.ensure_future(heartbeat(lambda: stun_probe("127.0.0.1", process.config.port)))
            exited = asyncio.ensure_future(process.wait())
            try:
                done, _ = await asyncio.wait({probe, exited}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                probe.cancel()
                exited.cancel()
            result = done.pop().result()
            why = result if isinstance(result, str) else f"it exited with status {result}"
            log.error("coturn lost (%s); restarting it", why)
            await process.stop()
    finally:
        await process.stop()
