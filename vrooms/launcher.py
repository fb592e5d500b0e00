"""Start the processes that run beside the REST workers, and restart them if they die.

``vrooms serve`` starts the call host (room calls, Janus) and the event dispatcher
before handing the main thread to uvicorn. Each is a child tied to ours
(PR_SET_PDEATHSIG), so none outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_READY_TIMEOUT_SECONDS = 20.0


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


class ChildProcess:
    """``python -m <module>``, restarted when it exits; ready once ``ready_path`` exists (if given)."""

    def __init__(self, module: str, name: str, ready_path: Path | None = None) -> None:
        self.module = module
        self.name = name
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"{name}-watcher", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        if self.ready_path is not None:
            self.ready_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            tied_to_parent([sys.executable, "-m", self.module], signal.SIGTERM), stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while self.ready_path is not None and not self.ready_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                print(f"vrooms: the {self.name} did not start.", file=sys.stderr)
                return
            time.sleep(0.02)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self.process
            if process is not None and process.poll() is not None and not self._stopping.is_set():
                print(f"vrooms: the {self.name} exited ({process.returncode}); restarting it.", file=sys.stderr)
                time.sleep(0.5)
                self._spawn()
            self._stopping.wait(0.2)

    def stop(self) -> None:
        self._stopping.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
