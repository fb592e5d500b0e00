"""Run Janus as a child of the call host, and bring it back when it dies.

Every start gets a fresh configuration (new secrets, a free API port). The child is
tied to its parent with PR_SET_PDEATHSIG, so a killed call host never leaves an
orphaned Janus holding media ports.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

from vrooms.config import Settings
from vrooms.media.config import JanusEndpoint, janus_lib_dir, write_config
from vrooms.media.interfaces import ice_interfaces
from vrooms.processes import stop_process, tied_to_parent

log = logging.getLogger("vrooms.media")

_READY_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JanusProcess:
    """One managed Janus: its generated configuration, its process and its log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder: Path = settings.data_dir / "janus"
        self.process: asyncio.subprocess.Process | None = None

    def interfaces(self) -> list[str]:
        if self.settings.media_interfaces:
            return [name.strip() for name in self.settings.media_interfaces.split(",") if name.strip()]
        names = [name for name, _ in ice_interfaces()]
        if not names:
            raise RuntimeError(
                "no network interface with an IPv4 address other than loopback: Janus cannot offer ICE "
                "candidates. Bring one up or set VROOMS_MEDIA_INTERFACES."
            )
        return names

    async def start(self) -> JanusEndpoint:
        lib_dir = janus_lib_dir(self.settings.janus_binary)
        port = free_port()
        endpoint = write_config(
            folder=self.folder,
            lib_dir=lib_dir,
            ws_port=port,
            interfaces=self.interfaces(),
            rtp_port_range=self.settings.rtp_port_range,
            plain_rtp_port_range=self.settings.plain_rtp_port_range,
            stun_server=self.settings.stun_server,
            public_ip=self.settings.public_ip,
            debug_level=self.settings.janus_debug_level,
        )
        log_file = (self.folder / "janus.log").open("ab")
        command = [self.settings.janus_binary, f"--configs-folder={self.folder}"]
        command += [f"--config={self.folder / 'janus.jcfg'}", "--disable-colors"]
        self.process = await asyncio.create_subprocess_exec(
            *tied_to_parent(command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        log_file.close()
        await self._wait_listening(port)
        log.info("Janus %s started (pid %d, API on 127.0.0.1:%d)", lib_dir, self.process.pid, port)
        return endpoint

    async def _wait_listening(self, port: int) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"Janus exited with status {self.process.returncode}; see {self.folder}/janus.log")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        await self.stop()
        raise RuntimeError(f"Janus did not open its API port within {_READY_TIMEOUT_SECONDS} s; see its log")

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> None:
        await stop_process(self.process)
