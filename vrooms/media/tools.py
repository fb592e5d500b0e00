"""Running the media tools vrooms leans on (ffmpeg, espeak-ng, janus-pp-rec) as bounded subprocesses."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
from functools import partial

from vrooms.launcher import die_with_parent

log = logging.getLogger("vrooms.media")


class ToolFailed(Exception):
    """The tool is missing, failed or overran; the message says which and what to do."""


async def run_tool(command: list[str], package: str, timeout_seconds: float | None) -> bytes:
    """``command``'s standard output; its standard error goes to the log, never to a client.
    Without a timeout it runs until it ends or is cancelled (then it is killed)."""
    if shutil.which(command[0]) is None:
        raise ToolFailed(f"{command[0]} is not installed on the server (apt-get install {package}).")
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=partial(die_with_parent, signal.SIGKILL),  # a looping prompt must not outlive a killed host
    )
    try:
        output, errors = await asyncio.wait_for(process.communicate(), timeout_seconds)
    except TimeoutError:
        await _kill(process)
        raise ToolFailed(f"{command[0]} took longer than {timeout_seconds or 0:.0f} s.") from None
    except asyncio.CancelledError:
        await _kill(process)
        raise
    if process.returncode != 0:
        log.info("%s failed: %s", command[0], errors.decode(errors="replace")[-500:])
        raise ToolFailed(f"{command[0]} could not read or make the audio.")
    return output


async def _kill(process: asyncio.subprocess.Process) -> None:
    process.kill()
    await asyncio.shield(process.wait())
