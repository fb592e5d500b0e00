"""Rules of the code's shape that review keeps finding broken (read from the sources with ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "vrooms"


def _imports(path: Path) -> set[str]:
    """The vrooms modules ``path`` imports (``from vrooms.x import y`` counts as vrooms.x and vrooms.x.y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vrooms"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("vrooms"))
    return found


def _package_imports(package: str) -> set[str]:
    return {module for path in (ROOT / package).rglob("*.py") for module in _imports(path)}


def test_recording_does_not_import_call_automation() -> None:
    """Automation starts recordings; what both need (app callbacks) is below both, in ``callbacks``."""
    assert not [m for m in _package_imports("recording") if m.startswith("vrooms.automation")]
    assert not [m for m in _package_imports("callbacks") if m.startswith(("vrooms.automation", "vrooms.recording"))]


def test_the_call_host_builds_only_what_it_needs() -> None:
    """The call host is a composition root of its own: it does not build the REST worker's services."""
    assert "vrooms.app" not in _imports(ROOT / "calls" / "host.py")


def test_only_the_cli_starts_processes_through_the_launcher() -> None:
    users = [path for path in ROOT.rglob("*.py") if "vrooms.launcher" in _imports(path)]
    assert all(path.parent.name == "cli" for path in users), users


def test_the_cluster_package_does_not_reach_into_the_rest_layer() -> None:
    """Placement, registry and bus are infrastructure: no HTTP routes or the REST context in them."""
    reached = _package_imports("cluster")
    rest_layer = ("vrooms.app", "vrooms.context", "vrooms.api.endpoint", "vrooms.api.responses")
    assert not [m for m in reached if m.startswith(rest_layer)]


def test_the_http_layer_and_the_domains_routes_do_not_import_every_domain() -> None:
    """``context.Services`` names every domain: only the composition root (``app``) imports it.
    The HTTP layer declares what it needs (``ApiServices``) and each domain's routes what they use."""
    users = sorted(str(path.relative_to(ROOT)) for path in ROOT.rglob("*.py") if "vrooms.context" in _imports(path))
    assert users == ["app.py"]
    generic = _package_imports("api")
    domains = ("rooms", "identity", "events", "automation", "recording", "calls", "pstn", "cluster")
    assert not [m for m in generic if m.startswith(tuple(f"vrooms.{domain}" for domain in domains))]


def test_telephony_automation_and_recording_use_the_calls_through_their_interface() -> None:
    """``calls.interface.RoomCalls`` is what they may use; the call service's fields are its own."""
    for package in ("pstn", "automation", "recording", "callbacks"):
        assert "vrooms.calls.service" not in _package_imports(package), package
