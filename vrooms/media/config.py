"""The Janus configuration vrooms generates for the Janus it manages.

Only what vrooms uses is loaded: the AudioBridge and VideoRoom plugins and the
WebSocket transport, bound to loopback. Secrets are random per start, so nothing
but the call host can use Janus's API even from this machine.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from vrooms.store.files import write_private

# Debian's janus package layout (also what ``./configure --prefix=/usr`` gives).
_LIB_DIR_CANDIDATES = (Path("/usr/lib/x86_64-linux-gnu/janus"), Path("/usr/lib/aarch64-linux-gnu/janus"))
_PLUGINS = ("libjanus_audiobridge.so", "libjanus_videoroom.so")
_TRANSPORTS = ("libjanus_websockets.so",)
# Folders Janus must never write recordings into.
RECORDING_PART = "part"  # the extension Janus gives a recording while it writes it
_PROTECTED = ", ".join(f'"{p}"' for p in ("/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr"))


@dataclass(frozen=True)
class JanusEndpoint:
    """How the call host reaches a Janus: its WebSocket API and the secrets it wants."""

    url: str
    api_secret: str | None
    admin_key: str | None


def janus_lib_dir(binary: str) -> Path:
    path = shutil.which(binary)
    if path:
        prefix = Path(path).resolve().parent.parent
        for candidate in (prefix / "lib" / "janus", *_LIB_DIR_CANDIDATES):
            if (candidate / "plugins").is_dir():
                return candidate
    for candidate in _LIB_DIR_CANDIDATES:
        if (candidate / "plugins").is_dir():
            return candidate
    raise FileNotFoundError(
        f"Janus not found ('{binary}'): install it with 'apt-get install janus' or set VROOMS_JANUS_URL "
        "to use a Janus you run yourself."
    )


def _disable_all_but(folder: Path, keep: tuple[str, ...]) -> str:
    names = sorted(p.name for p in folder.glob("*.so") if p.name not in keep)
    return ",".join(names)


def write_config(
    *,
    folder: Path,
    lib_dir: Path,
    ws_port: int,
    interfaces: list[str],
    rtp_port_range: str,
    plain_rtp_port_range: str,
    stun_server: str | None,
    debug_level: int,
    public_ip: str | None = None,
) -> JanusEndpoint:
    """Write janus.jcfg and the plugin/transport files into ``folder``; return how to reach it."""
    folder.mkdir(parents=True, exist_ok=True)
    api_secret = secrets.token_urlsafe(24)
    admin_key = secrets.token_urlsafe(24)
    stun = ""
    if stun_server:
        host, _, port = stun_server.rpartition(":")
        stun = f'\tstun_server = "{host}"\n\tstun_port = {int(port)}\n'
    if public_ip:  # behind a NAT: candidates with the public address, the private ones kept (a LAN)
        stun += f'\tnat_1_1_mapping = "{public_ip}"\n\tkeep_private_host = true\n'
    main = f"""general: {{
\tconfigs_folder = "{folder}"
\tplugins_folder = "{lib_dir / "plugins"}"
\ttransports_folder = "{lib_dir / "transports"}"
\tevents_folder = "{lib_dir / "events"}"
\tloggers_folder = "{lib_dir / "loggers"}"
\tdebug_level = {debug_level}
\tdebug_timestamps = true
\tserver_name = "vrooms-media"
\tsession_timeout = 60
\tapi_secret = "{api_secret}"
\tadmin_secret = "{secrets.token_urlsafe(24)}"
\tprotected_folders = [{_PROTECTED}]
\trecordings_tmp_ext = "{RECORDING_PART}"
}}
media: {{
\trtp_port_range = "{rtp_port_range}"
}}
nat: {{
{stun}\tice_enforce_list = "{",".join(interfaces)}"
\tignore_mdns = true
}}
plugins: {{
\tdisable = "{_disable_all_but(lib_dir / "plugins", _PLUGINS)}"
}}
transports: {{
\tdisable = "{_disable_all_but(lib_dir / "transports", _TRANSPORTS)}"
}}
loggers: {{
\tdisable = "{_disable_all_but(lib_dir / "loggers", ())}"
}}
events: {{
\tbroadcast = false
}}
"""
    files = {
        "janus.jcfg": main,
        "janus.transport.websockets.jcfg": f"""general: {{
\tjson = "compact"
\tws = true
\tws_port = {ws_port}
\tws_ip = "127.0.0.1"
\twss = false
}}
admin: {{
\tadmin_ws = false
\tadmin_wss = false
}}
""",
        # admin_key: only requests that carry it may create rooms.
        # Plain-RTP (telephone) legs listen on loopback, where rtpengine relays them.
        "janus.plugin.audiobridge.jcfg": (
            f'general: {{\n\tadmin_key = "{admin_key}"\n\tevents = false\n\tlocal_ip = "127.0.0.1"\n'
            f'\trecord_tmp_ext = "{RECORDING_PART}"\n'
            f'\trtp_port_range = "{plain_rtp_port_range}"\n}}\n'
        ),
        "janus.plugin.videoroom.jcfg": f'general: {{\n\tadmin_key = "{admin_key}"\n\tevents = false\n}}\n',
    }
    for name, text in files.items():
        write_private(folder / name, text.encode())
    return JanusEndpoint(url=f"ws://127.0.0.1:{ws_port}", api_secret=api_secret, admin_key=admin_key)
