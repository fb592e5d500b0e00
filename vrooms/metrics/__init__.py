"""A node's Prometheus metrics: every metric is named in ``catalog``; one listener exposes them.

A node is several processes (REST workers, the call host, the dispatcher). Each writes its
samples to files in ``<run_dir>/metrics`` (prometheus-client's multiprocess mode, chosen by the
environment before the library is first imported: this module does not import it at the top),
and ``vrooms serve`` exposes the node's whole picture at ``http://<VROOMS_METRICS_LISTEN>/metrics``.
Off unless that is set: the listener has no key, so bind it to an address only the monitoring
reaches (e.g. 127.0.0.1:9464).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(directory: Path) -> None:
    """Samples of every process of this node go to ``directory`` (emptied of a previous run's).

    Called by ``vrooms serve`` before it starts any process; they inherit the environment.
    """
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[_MULTIPROCESS_ENV] = str(directory)


def expose(listen: str) -> None:
    """Serve the sum of every process's samples at ``http://<listen>/metrics`` (a thread)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), host.strip("[]"), registry)
