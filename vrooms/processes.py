"""Child processes tied to ours: started so that they die with us, stopped so that they are gone.

A low layer: the media tools, Janus, rtpengine and the launcher's children all start this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal


def tied_to_parent(command: list[str], sig: signal.Signals = signal.SIGKILL) -> list[str]:
    """``command`` run so that the kernel sends it ``sig`` when this process dies (PR_SET_PDEATHSIG).

    util-linux's ``setpriv`` sets it and then execs the command (same pid). Setting it in a
    ``preexec_fn`` instead is unsafe in a process that runs threads (Python's subprocess docs):
    the call host and the launcher both do."""
    return ["setpriv", f"--pdeathsig={sig.name}", "--", *command]


async def stop_process(process: asyncio.subprocess.Process | None) -> None:
    """SIGTERM, then SIGKILL after 5 s: a managed media process (Janus, rtpengine) is gone after this.
    SIGCONT follows the SIGTERM: a stopped process (SIGSTOP: the hang a heartbeat found) would
    otherwise hold its SIGTERM until the SIGKILL."""
    if process is None or process.returncode is not None:
        return
    process.terminate()
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGCONT)
    try:
        await asyncio.wait_for(process.wait(), 5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
