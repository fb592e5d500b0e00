"""A SIP peer written by hand (RFC 3261 messages over UDP) for the tests that cheat: a BYE from
another address with a real dialog's Call-ID and tags, a burst of INVITEs. sipp plays honest
carriers (tests/phones.py); this plays the attacker and the flood, where every header must be
ours to choose."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field

_SDP = (
    "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def parse(data: bytes) -> tuple[str, dict[str, str], str]:
    """First line, headers (lower-case names, first value), body."""
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    first, *lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return first, headers, body


def _uri(address: str) -> str:
    """The URI of a name-addr (``"Anonymous" <sip:x@h>;tag=t``) or of a bare addr-spec."""
    return address.split("<", 1)[1].split(">", 1)[0] if "<" in address else address.split(";", 1)[0]


@dataclass
class Dialog:
    call_id: str
    local: str  # our From/To header value, with our tag
    remote: str  # theirs, with their tag
    remote_target: str  # the Request-URI for in-dialog requests
    cseq: int = 1
    invite_branch: str = ""


@dataclass
class RawSip:
    """One UDP socket at ``host:port``; ``peer`` is vrooms' SIP listener."""

    peer: tuple[str, int]
    host: str = "127.0.0.1"
    port: int = 0
    timeout: float = 10.0
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.sock.settimeout(self.timeout)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def receive(self) -> tuple[str, dict[str, str], str]:
        return parse(self.sock.recv(65536))

    def response(self, cseq_method: str) -> int:
        """The next final response to a ``cseq_method`` request (provisionals skipped)."""
        while True:
            first, headers, _ = self.receive()
            if first.startswith("SIP/2.0 ") and headers.get("cseq", "").endswith(cseq_method):
                code = int(first.split()[1])
                if code >= 200:
                    return code

    def _send(self, lines: list[str], body: str = "") -> None:
        extra = ["Content-Type: application/sdp"] if body else []
        text = "\r\n".join([*lines, *extra, f"Content-Length: {len(body)}", "", body])
        self.sock.sendto(text.encode(), self.peer)

    def _via(self, branch: str) -> str:
        return f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{branch};rport"

    def request(self, method: str, dialog: Dialog, *, branch: str | None = None, body: str = "") -> None:
        self._send(
            [
                f"{method} {dialog.remote_target} SIP/2.0",
                self._via(branch or secrets.token_hex(6)),
                "Max-Forwards: 70",
                f"From: {dialog.local}",
                f"To: {dialog.remote}",
                f"Call-ID: {dialog.call_id}",
                f"CSeq: {dialog.cseq} {method}",
                f"Contact: <sip:raw@{self.host}:{self.port}>",
            ],
            body,
        )

    def invite(self, number: str) -> Dialog:
        """An INVITE from the caller +15557654321 to ``number``; the answer is read with ``answered``."""
        dialog = Dialog(
            call_id=f"{secrets.token_hex(8)}@raw",
            local=f"<sip:+15557654321@{self.host}>;tag={secrets.token_hex(4)}",
            remote=f"<sip:{number}@{self.peer[0]}>",
            remote_target=f"sip:{number}@{self.peer[0]}:{self.peer[1]}",
            invite_branch=secrets.token_hex(6),
        )
        self.request("INVITE", dialog, branch=dialog.invite_branch, body=_SDP.format(port=self.port + 2))
        return dialog

    def answered(self, dialogs: dict[str, Dialog]) -> tuple[Dialog, int]:
        """The next final answer to one of ``dialogs``' INVITEs, acknowledged (RFC 3261 13.2.2.4, 17.1.1.3)."""
        while True:
            first, headers, _ = self.receive()
            dialog = dialogs.get(headers.get("call-id", ""))
            if dialog is None or not first.startswith("SIP/2.0 ") or not headers["cseq"].endswith("INVITE"):
                continue
            code = int(first.split()[1])
            if code < 200:
                continue
            dialog.remote = headers["to"]
            if code < 300:
                dialog.remote_target = _uri(headers["contact"])
                self.request("ACK", dialog)
            else:
                self.request("ACK", dialog, branch=dialog.invite_branch)
            return dialog, code


def answer_invite(trunk: RawSip) -> Dialog:
    """Answer the next INVITE that reaches the trunk (a dial-out) with 200 and our SDP; the dialog
    as the phone sees it."""
    while True:
        first, headers, _ = trunk.receive()
        if first.startswith("INVITE "):
            break
    tag = secrets.token_hex(4)
    contact = _uri(headers["contact"])
    trunk.sock.sendto(
        "\r\n".join(
            [
                "SIP/2.0 200 OK",
                f"Via: {headers['via']}",
                f"From: {headers['from']}",
                f"To: {headers['to']};tag={tag}",
                f"Call-ID: {headers['call-id']}",
                f"CSeq: {headers['cseq']}",
                f"Contact: <sip:phone@127.0.0.1:{trunk.port}>",
                "Content-Type: application/sdp",
                f"Content-Length: {len(_SDP.format(port=trunk.port + 2))}",
                "",
                _SDP.format(port=trunk.port + 2),
            ]
        ).encode(),
        trunk.peer,
    )
    return Dialog(headers["call-id"], f"{headers['to']};tag={tag}", headers["from"], contact, cseq=1)
