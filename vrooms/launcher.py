"""Start the processes that run beside the REST workers, and restart them if they die.

``vrooms serve`` starts the call host (room calls, Janus) and the event dispatcher
before handing the main thread to uvicorn. Each is a child tied to ours
(PR_SET_PDEATHSIG), so none outlives the server.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from vrooms.processes import tied_to_parent
from vrooms.supervision import Backoff

_READY_TIMEOUT_SECONDS = 20.0
# A child that ran this long before it exited is restarted at once, not after a long back-off.
_STEADY_SECONDS = 60.0


class ChildProcess:
    """``python -m <module>``, restarted when it exits; ready once ``ready_path`` exists (if given).

    Restarts back off (``Backoff``: 0.25 s doubling to 10 s, with jitter; a child that ran a
    minute starts again from the shortest), and ``stop`` and a restart take one lock, so a
    stopping server never leaves a child it started meanwhile.
    """

    def __init__(self, module: str, name: str, ready_path: Path | None = None) -> None:
        self.module = module
        self.name = name
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._backoff = Backoff()
        self._started_at = 0.0
        self._watcher = threading.Thread(target=self._watch, name=f"{name}-watcher", daemon=True)

    def start(self) -> None:
        with self._lock:
            self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        """Start the child (the lock is held); waits for its ready file, if it has one."""
        if self.ready_path is not None:
            self.ready_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            tied_to_parent([sys.executable, "-m", self.module], signal.SIGTERM), stdin=subprocess.DEVNULL
        )
        self._started_at = time.monotonic()
        deadline = self._started_at + _READY_TIMEOUT_SECONDS
        while self.ready_path is not None and not self.ready_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline or self._stopping.is_set():
                print(f"vrooms: the {self.name} did not start.", file=sys.stderr)
                return
            time.sleep(0.02)

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            process = self.process
            if process is None or process.poll() is None:
                continue
            if time.monotonic() - self._started_at > _STEADY_SECONDS:
                self._backoff.reset()
            delay = self._backoff.next()
            print(
                f"vrooms: the {self.name} exited ({process.returncode}); restarting it in {delay:.1f} s.",
                file=sys.stderr,
            )
            if self._stopping.wait(delay):
                return
            with self._lock:
                if not self._stopping.is_set():
                    self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
