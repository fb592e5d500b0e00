"""Start the call host beside the REST workers, and restart it if it dies.

``vrooms serve`` runs this before handing the main thread to uvicorn. The host is a
child process tied to ours (PR_SET_PDEATHSIG), so it never outlives the server.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
import time

from vrooms.config import Settings

_PR_SET_PDEATHSIG = 1
_READY_TIMEOUT_SECONDS = 20.0


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class CallHostProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="call-host-watcher", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        socket_path = self.settings.signaling_socket
        socket_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vrooms.calls.host"], stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while not socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                print("vrooms: the call host did not start; room calls are unavailable.", file=sys.stderr)
                return
            time.sleep(0.02)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self.process
            if process is not None and process.poll() is not None and not self._stopping.is_set():
                print(f"vrooms: the call host exited ({process.returncode}); restarting it.", file=sys.stderr)
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
