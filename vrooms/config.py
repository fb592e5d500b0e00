"""One typed settings object for the whole service.

Values come from, in order of precedence: CLI flags (passed as keyword arguments),
``VROOMS_*`` environment variables, then the defaults below. Worker processes
started by uvicorn read the same environment, which is why the CLI exports its
flags as ``VROOMS_*`` variables before it starts them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_node_name() -> str:
    """The host name, in the characters a node name may hold (it names keys and subjects on the bus)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64] or "node"


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "vrooms"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VROOMS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    # None means "SQLite file in the data dir"; see ``effective_database_url``.
    database_url: str | None = None
    tls: bool = True
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)

    # Access keys: from the environment, or else from ``<data_dir>/keys.json``
    # (created on first start, rotated with ``vrooms keys rotate``).
    access_key_primary: SecretStr | None = None
    access_key_secondary: SecretStr | None = None
    keys_file: Path | None = None

    # ACS accepts an ``x-ms-date`` up to 15 minutes away from the server clock.
    hmac_clock_skew_seconds: int = Field(default=15 * 60, ge=0)
    # Largest roster a room may have; ACS documents a per-room participant limit too.
    max_room_participants: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A request's head, then its body, must arrive within these (slow clients hold no slot).
    http_head_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    # ACS tracks repeatable requests for 5 minutes (REST docs, "Repeatable requests").
    repeatability_window_seconds: int = Field(default=5 * 60, ge=1)
    default_page_size: int = Field(default=100, ge=1, le=1000)
    # The operation log is written in batches so that reads stay read-only on disk.
    oplog_flush_interval_seconds: float = Field(default=0.2, gt=0)
    log_level: str = "info"

    # The browser client's files, served at /web/ (default: web/ of the source checkout).
    web_dir: Path | None = None

    # Room calls. The call host runs beside the REST workers and drives Janus.
    calls_enabled: bool = True
    # Signaling requests one connection may send: a burst, then a sustained rate (RateLimited beyond).
    signaling_request_burst: int = Field(default=200, ge=1)
    signaling_requests_per_second: float = Field(default=50.0, gt=0)
    # An external Janus (``ws://host:port``) instead of the one vrooms starts itself.
    janus_url: str | None = None
    janus_api_secret: SecretStr | None = None
    janus_admin_key: SecretStr | None = None
    janus_binary: str = "janus"
    janus_debug_level: int = Field(default=3, ge=0, le=7)
    # Interfaces Janus gathers ICE candidates on (comma-separated names); default:
    # every interface that is up, not loopback and has an IPv4 address.
    media_interfaces: str | None = None
    rtp_port_range: str = Field(default="20000-40000", pattern=r"^\d{1,5}-\d{1,5}$")
    # The most a camera or screen may send, in bit/s; Janus tells senders (REMB). 512 kbit/s
    # gives 320x240 to 640x360 at 15-30 fps good quality; receivers' CPU grows with it.
    video_bitrate: int = Field(default=512_000, ge=64_000, le=10_000_000)
    # None: no STUN (the right choice on a LAN or with a public address), else host:port.
    stun_server: str | None = None
    # The IPv4 address clients reach this machine's media at, when it is behind a NAT (a cloud
    # VM): Janus advertises it (nat_1_1_mapping, private candidates kept) and coturn relays from it.
    # None: an interface's own public address if it has one, else only the interfaces' addresses.
    public_ip: str | None = Field(default=None, pattern=r"^\d{1,3}(\.\d{1,3}){3}$")
    # TURN for participants whose network blocks UDP (media/turn.py): "off"; "embedded", a coturn
    # the call host starts (Debian's coturn); or "external", one at turn_host sharing turn_secret.
    turn: str = Field(default="off", pattern=r"^(off|embedded|external)$")
    # What clients connect to (a public address or name); default: the first media interface's address.
    turn_host: str | None = None
    turn_port: int = Field(default=3478, ge=1, le=65535)
    # TURN over TLS with this server's certificate (None: no TLS listener).
    turn_tls_port: int | None = Field(default=5349, ge=1, le=65535)
    turn_relay_ports: str = Field(default="49160-49999", pattern=r"^\d{1,5}-\d{1,5}$")
    # The shared secret credentials are signed with; embedded: generated into the data folder if unset.
    turn_secret: SecretStr | None = None
    coturn_binary: str = "turnserver"
    # How often the call host re-reads rosters and schedules of live calls, in case a
    # change notification from a worker or the CLI was missed.
    call_reconcile_interval_seconds: float = Field(default=5.0, gt=0)

    # Telephone legs (pstn/). Without a trunk URI, calls run and phone requests are refused.
    # The trunk: sip:host[:port][;transport=udp] (sippy speaks UDP; TCP and TLS are refused).
    sip_trunk_uri: str | None = None
    sip_trunk_username: str | None = None
    sip_trunk_password: SecretStr | None = None
    # E.164 number the callee sees (the From user part); default: the trunk username.
    sip_caller_id: str | None = None
    sip_register: bool = False
    # Where the trunk's INVITEs reach vrooms (address:port).
    sip_listen: str = Field(default="127.0.0.1:5060", pattern=r"^[^\s:]+:\d{1,5}$")
    # Addresses whose SIP requests are served (comma-separated); default: the trunk's host.
    sip_trusted_sources: str | None = None
    # Dial-out targets by prefix, comma-separated: "+44,+1" allows only those, "!+1900" denies.
    sip_allow_prefixes: str = ""
    # A dial-out nobody answers is given up (CANCEL) after this.
    sip_no_answer_seconds: float = Field(default=45.0, gt=0, le=600)
    sip_max_phone_legs_per_room: int = Field(default=10, ge=0, le=1000)
    # Incoming calls at once (ringing, collecting a PIN or in a call): beyond the total a new one
    # gets 503, beyond a called number's share 486, before any media is set up for it.
    sip_max_incoming_calls: int = Field(default=100, ge=0, le=10000)
    sip_max_incoming_calls_per_number: int = Field(default=20, ge=0, le=10000)
    # Static dial-in (until Call Automation answers calls): JSON {"+15550001111":
    # {"roomId": "...", "pin": "1234"}}: a caller to that number who keys the PIN joins as an Attendee.
    sip_dialin: dict[str, dict[str, str]] = Field(default_factory=dict)
    # An external rtpengine (udp:host:port, ng protocol), instead of the one vrooms starts; it
    # must report DTMF (--dtmf-log-dest) to 127.0.0.1:<rtpengine_dtmf_port> and learn endpoints.
    rtpengine_url: str | None = Field(default=None, pattern=r"^udp:[^\s:]+:\d{1,5}$")
    rtpengine_dtmf_port: int = Field(default=0, ge=0, le=65535)
    rtpengine_binary: str = "rtpengine"
    rtpengine_port_range: str = Field(default="41000-44999", pattern=r"^\d{1,5}-\d{1,5}$")
    # Ports the AudioBridge opens for plain-RTP (telephone) legs, on loopback.
    plain_rtp_port_range: str = Field(default="45000-49999", pattern=r"^\d{1,5}-\d{1,5}$")

    # Events (webhooks). The retry schedule is Event Grid's: 10 s, 30 s, 1 min, 5 min,
    # 10 min, 30 min, 1 h, 3 h, 6 h, then every 12 h, within 30 attempts and 24 hours.
    event_retry_delays_seconds: list[float] = Field(
        default=[10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200], min_length=1
    )
    event_max_attempts: int = Field(default=30, ge=1)
    event_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    # Event Grid waits 30 s for a webhook to answer.
    event_delivery_timeout_seconds: float = Field(default=30.0, gt=0)
    event_poll_interval_seconds: float = Field(default=0.05, gt=0)
    # Deliveries in flight at once, across subscriptions and order keys.
    event_concurrency: int = Field(default=64, ge=1)
    # Delivered events are kept this long (for inspection), then purged; dead letters stay.
    event_retention_seconds: float = Field(default=7 * 86400, gt=0)
    # The "topic" (Event Grid schema) / "source" (CloudEvents) of every event.
    event_topic: str | None = None

    # -- Call Automation ----------------------------------------------------------------
    # The address apps reach this server at (behind a proxy, its public URL): the issuer of the
    # callbacks' JWTs, whose JWKS is at <public_url>/calling/keys. Default: this server's own.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # Prompts (``:play``): local files an app names as ``file:<name>``, and the hosts FileSource
    # URLs may be fetched from (comma-separated; default any host with public addresses only).
    prompts_dir: Path | None = None
    # The prompt cache (rendered clips, in <data_dir>/prompts-cache) is kept under this size.
    prompt_cache_mb: int = Field(default=512, ge=16)
    # Where the server may connect when an app names the URL (vrooms/egress.py says how each is
    # read): comma-separated "public", "private", "loopback", CIDR networks or exact host names.
    egress_prompts: str = "public"
    egress_callbacks: str = "public,private"
    egress_streaming: str = "public,private"
    egress_webhooks: str = "public,private"

    # /metrics (Prometheus text) at this address:port, e.g. 127.0.0.1:9464; None: off. It has no
    # key: bind it where only the monitoring reaches.
    metrics_listen: str | None = Field(default=None, pattern=r"^\S+:\d{1,5}$")

    # Where recordings are made and kept (default: <data_dir>/recordings). In a cluster, a folder
    # every node mounts: any node serves a recording, and one survives the node that made it.
    recordings_dir: Path | None = None

    # -- Live captions (captions/) ----------------------------------------------------------
    # "pocketsphinx": the embedded en-us engine (no download); "vosk": the models in
    # captions_models_dir, one folder per language named by its BCP 47 tag (en-us/, ko/).
    captions_engine: str = Field(default="pocketsphinx", pattern=r"^(pocketsphinx|vosk)$")
    captions_models_dir: Path | None = None
    # Worker processes decoding speech (each holds its speakers' recognizers).
    captions_workers: int = Field(default=1, ge=1, le=16)
    # Speakers recognized at once on this node, all calls together (one per speaker and language;
    # a call's four dominant speakers at most). One PocketSphinx worker keeps up with four on two
    # cores (BENCHMARKS.md); beyond the limit a speaker is not captioned and the state says so.
    captions_max_speakers: int = Field(default=4, ge=1, le=1000)

    # -- Several nodes (cluster/) -----------------------------------------------------------
    # A NATS server (nats://host:4222) makes this node one of a cluster: nodes sharing it, the
    # cluster name and one PostgreSQL database are one service. None: a single node, as always.
    cluster: str | None = Field(default=None, pattern=r"^(nats|tls)://\S+$")
    # Scopes the bus's subjects and buckets, so that clusters (tests, staging) can share a NATS.
    cluster_name: str = Field(default="vrooms", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    node_name: str = Field(default_factory=_default_node_name, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # The URL other nodes (and clients) reach this node's REST and signaling at; default: its own.
    advertise: str | None = Field(default=None, pattern=r"^https?://[^\s/]+/?$")

    @field_validator("egress_prompts", "egress_callbacks", "egress_streaming", "egress_webhooks", mode="after")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",")):
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)  # a ValueError names the bad network
        return value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'vrooms.db'}"

    @property
    def local_host(self) -> str:
        """The address a client on this machine reaches the service at (not a wildcard)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def local_endpoint(self) -> str:
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    @property
    def effective_advertise(self) -> str:
        return (self.advertise or self.local_endpoint).rstrip("/")

    @property
    def sip_reachable(self) -> str:
        """host:port other nodes send SIP to: the listen address, or the advertised host when it
        listens on every address."""
        host, port = self.sip_listen.rsplit(":", 1)
        if host in ("0.0.0.0", "::"):
            host = urlsplit(self.effective_advertise).hostname or self.local_host
        return f"{host}:{port}"

    @property
    def effective_recordings_dir(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def effective_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def run_dir(self) -> Path:
        """Unix sockets between the REST workers, the CLI and the call host."""
        return self.data_dir / "run"

    @property
    def endpoint_file(self) -> Path:
        """Where ``serve`` writes the endpoint it serves, for the CLI's connection strings."""
        return self.data_dir / "endpoint"

    @property
    def signaling_socket(self) -> Path:
        """Where the call host serves the signaling WebSocket; the REST workers relay to it."""
        return self.run_dir / "calls.sock"
