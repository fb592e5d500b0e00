"""Running the media tools vrooms leans on (ffmpeg, espeak-ng, janus-pp-rec) as bounded subprocesses.

Bounded in time (``timeout_seconds``) and in what they write to standard output
(``max_output_bytes``: a tool made to write more is killed, as espeak-ng is by SSML full of
100-second breaks), tied to the call host (they die with it), and always reaped: a tool
that is cancelled, or that exits as it is killed, is waited for before the caller goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket

from vrooms.processes import tied_to_parent
from vrooms.supervision import to_the_end

log = logging.getLogger("vrooms.media")

_CHUNK_BYTES = 64 * 1024
_STDERR_KEPT = 500


class ToolFailed(Exception):
    """The tool is missing, failed or overran; the message says which and what to do."""


async def run_tool(
    command: list[str], package: str, timeout_seconds: float | None, *, max_output_bytes: int | None = None
) -> bytes:
    """``command``'s standard output; its standard error goes to the log, never to a client.
    Without a timeout it runs until it ends or is cancelled (then it is killed)."""
    if shutil.which(command[0]) is None:
        raise ToolFailed(f"{command[0]} is not installed on the server (apt-get install {package}).")
    process = await asyncio.create_subprocess_exec(
        *tied_to_parent(command),  # a looping prompt must not outlive a killed host
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        output, errors = await asyncio.wait_for(_communicate(process, max_output_bytes), timeout_seconds)
    except TimeoutError:
        await _kill(process)
        raise ToolFailed(f"{command[0]} took longer than {timeout_seconds or 0:.0f} s.") from None
    except BaseException:
        await _kill(process)
        raise
    if process.returncode != 0:
        log.info("%s failed: %s", command[0], errors.decode(errors="replace")[-_STDERR_KEPT:])
        raise ToolFailed(f"{command[0]} could not read or make the audio.")
    return output


async def _communicate(process: asyncio.subprocess.Process, limit: int | None) -> tuple[bytes, bytes]:
    assert process.stdout is not None and process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    output = bytearray()
    try:
        while chunk := await process.stdout.read(_CHUNK_BYTES):
            output += chunk
            if limit is not None and len(output) > limit:
                raise ToolFailed(f"the audio would be longer than this server allows ({limit // 1_000_000} MB).")
        await process.wait()
        return bytes(output), await errors
    finally:
        errors.cancel()


def free_udp_port() -> int:
    """A loopback UDP port free now, for a tool that binds it itself (ffmpeg from an SDP,
    rtpengine's ng port). Another process may take it before the tool binds it: the tool then
    fails to start, which its owner reports or retries (a stream's decoder ends the stream with
    MediaStreamingFailed; rtpengine's keeper starts it again on another port). Ports this
    process binds itself are bound to 0 and kept instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may exit on its own as it is killed
        process.kill()
    await to_the_end(process.wait())
