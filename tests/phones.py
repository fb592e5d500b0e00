"""The telephone network for tests: sipp as the carrier, with scenarios built per test.

Every scenario is a real SIP peer on UDP (Debian's sip-tester): it challenges with
digest auth when asked (401), answers, rings, is busy, plays a tone as RTP from a
pcap, echoes RTP back, sends RFC 4733 digits, or hangs up. Nothing of SIP or RTP is
faked.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

USER, PASSWORD = "vrooms-trunk", "s3cret-trunk-pw"
TONE_HZ = 1000.0

_SDP = """v=0
o=carrier 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
"""


def trunk_env(
    trunk_port: int, sip_listen: str, *, legs: int = 2, auth: bool = True, no_answer: int = 3
) -> dict[str, str]:
    """A server's settings for the carrier at ``trunk_port`` (``legs`` phone legs a room)."""
    credentials = {"VROOMS_SIP_TRUNK_USERNAME": USER, "VROOMS_SIP_TRUNK_PASSWORD": PASSWORD} if auth else {}
    return {
        "VROOMS_SIP_TRUNK_URI": f"sip:127.0.0.1:{trunk_port};transport=udp",
        **credentials,
        "VROOMS_SIP_CALLER_ID": "+15550000001",
        "VROOMS_SIP_LISTEN": sip_listen,
        "VROOMS_SIP_NO_ANSWER_SECONDS": str(no_answer),
        "VROOMS_SIP_MAX_PHONE_LEGS_PER_ROOM": str(legs),
    }


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def phone_port() -> Iterator[int]:
    """A UDP port for a phone (sipp or baresip), its TCP twin and TCP ``port + 1`` held meanwhile.

    baresip 1.0 also listens for SIP over TCP on the port and for TLS on ``port + 1`` (no setting
    turns them off) and exits if either is taken; an outgoing connection's ephemeral port did
    take one once, mid-suite. Sockets bound with ``SO_REUSEADDR`` but not listening keep the
    kernel from handing those ports out, while baresip (which sets it too) can still bind them.
    """
    while True:
        port = free_udp_port()
        held: list[socket.socket] = []
        try:
            for tcp in (port, port + 1):
                held.append(socket.socket())
                held[-1].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                held[-1].bind(("127.0.0.1", tcp))
        except OSError:
            for sock in held:
                sock.close()
            continue
        break
    try:
        yield port
    finally:
        for sock in held:
            sock.close()


def _mulaw(sample: float) -> int:
    """ITU-T G.711 mu-law of one sample in [-1, 1]."""
    value = max(-32635, min(32635, int(sample * 32767)))
    sign = 0x80 if value < 0 else 0
    value = abs(value) + 0x84
    exponent = max(0, min(7, value.bit_length() - 8))
    mantissa = (value >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def write_tone_pcap(path: Path, seconds: float, frequency: float = TONE_HZ, amplitude: float = 0.5) -> Path:
    """A pcap of PCMU RTP (20 ms packets) carrying a sine tone, for sipp's ``play_pcap_audio``."""
    samples = [amplitude * math.sin(2 * math.pi * frequency * n / 8000) for n in range(int(seconds * 50) * 160)]
    return write_pcmu_pcap(path, samples)


def write_pcmu_pcap(path: Path, samples: list[float]) -> Path:
    """A pcap of PCMU RTP (20 ms packets) carrying ``samples`` (8 kHz, -1..1)."""
    packets = []
    for n in range(len(samples) // 160):
        payload = bytes(_mulaw(sample) for sample in samples[n * 160 : (n + 1) * 160])
        rtp = struct.pack("!BBHII", 0x80, 0, n, n * 160, 0x1234) + payload
        udp = struct.pack("!HHHH", 40000, 40002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x7f\0\0\1", b"\x7f\0\0\1") + udp
        frame = b"\0" * 12 + b"\x08\x00" + ip
        sec, usec = divmod(n * 20_000, 1_000_000)
        packets.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"".join(packets))
    return path


def write_tone_wav(path: Path, seconds: float, frequency: float, amplitude: float = 0.5) -> Path:
    """A 16 kHz mono WAV of a sine tone: a prompt file with a pattern receivers can measure."""
    rate = 16000
    samples = [
        int(32767 * amplitude * math.sin(2 * math.pi * frequency * n / rate)) for n in range(int(seconds * rate))
    ]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


@dataclass
class Scenario:
    """What the carrier does with the next INVITE."""

    auth: bool = True
    final: int = 200  # 200 answers; 486, 404, 503... refuse; 0 never answers (rings until CANCEL)
    early_media: bool = False
    early_play: list[str] = field(default_factory=list)  # pcaps played as early media, after the 183
    ring_ms: int = 0  # how long it rings (or plays early media) before the final response
    play: list[str] = field(default_factory=list)  # pcaps played once answered, in order
    play_pause_ms: int = 500  # before each of ``play`` (0: the first plays as soon as the ACK arrives)
    hang_up_after_ms: int | None = None  # the phone hangs up (BYE) this long after answering

    def xml(self) -> str:
        steps = [_recv("INVITE")]
        if self.auth:
            steps += [
                _send(
                    "SIP/2.0 401 Unauthorized\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]carrier[call_number]\n"
                    '[last_Call-ID:]\n[last_CSeq:]\nWWW-Authenticate: Digest realm="carrier.test", '
                    'nonce="abc123[call_number]", algorithm=MD5\nContent-Length: 0\n'
                ),
                # sippy may send the authenticated INVITE before the ACK of the 401 (legal).
                '<recv request="ACK" optional="true"/>',
                '<recv request="INVITE" check_it="true"><action>'
                '<verifyauth assign_to="authvalid" username="' + USER + '" password="' + PASSWORD + '"/>'
                "</action></recv>",
                '<nop test="authvalid" next="authok"/>',
                _reply("403 Forbidden"),
                '<recv request="ACK"/>',
                '<nop next="done"/>',
                '<label id="authok"/>',
            ]
        steps.append(_reply("100 Trying"))
        if self.final == 0:
            steps += [
                _reply("180 Ringing"),
                # The 487 answers the INVITE: the CANCEL's Via branch, but the INVITE's CSeq.
                '<recv request="CANCEL"><action><ereg regexp="[0-9]+" search_in="hdr" '
                'header="CSeq:" assign_to="cseq"/></action></recv>',
                _reply("200 OK"),
                _reply("487 Request Terminated", cseq="CSeq: [$cseq] INVITE\n"),
                _recv("ACK"),
            ]
            return _scenario(steps)
        steps.append(_reply("183 Session Progress", sdp=True) if self.early_media else _reply("180 Ringing"))
        steps += [f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>' for pcap in self.early_play]
        if self.ring_ms:
            steps.append(f'<pause milliseconds="{self.ring_ms}"/>')
        if self.final != 200:
            steps += [_reply(f"{self.final} Refused"), _recv("ACK")]
            return _scenario(steps)
        steps += [_reply("200 OK", sdp=True), '<recv request="ACK" optional="false"/>']
        for pcap in self.play:  # as a person would: a moment after answering, one key after another
            if self.play_pause_ms:
                steps.append(f'<pause milliseconds="{self.play_pause_ms}"/>')
            steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        if self.hang_up_after_ms is not None:
            steps += [f'<pause milliseconds="{self.hang_up_after_ms}"/>', _bye(), '<recv response="200"/>']
        else:
            steps += [_recv("BYE"), _reply("200 OK")]
        return _scenario(steps)


def _recv(method: str) -> str:
    return f'<recv request="{method}"/>'


def _reply(status: str, *, sdp: bool = False, cseq: str = "[last_CSeq:]\n") -> str:
    body = _SDP if sdp else ""
    # A UAS copies Record-Route into its responses (RFC 3261 §12.1.1), so a proxy stays in the dialog.
    headers = (
        "[last_Via:]\n[last_Record-Route:]\n[last_From:]\n[last_To:];tag=[pid]carrier[call_number]\n"
        f"[last_Call-ID:]\n{cseq}"
    )
    contact = "Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>\n"
    content = "Content-Type: application/sdp\n" if sdp else ""
    return _send(f"SIP/2.0 {status}\n{headers}{contact}{content}Content-Length: [len]\n\n{body}", raw=True)


def _bye() -> str:
    return _send(
        "BYE sip:vrooms@[remote_ip]:[remote_port] SIP/2.0\n"
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        "From: [last_To:]\nTo: [last_From:]\n[last_Call-ID:]\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
        raw=True,
    )


def _send(message: str, *, raw: bool = False) -> str:
    text = message if raw else message + "\n"
    return f"<send><![CDATA[\n{text}\n]]></send>"


def _scenario(steps: list[str]) -> str:
    body = "\n".join(steps)
    head = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="carrier">'
    return f'{head}\n{body}\n<label id="done"/>\n</scenario>\n'


DTMF_PCAPS = Path("/usr/share/sip-tester")


def dtmf_pcap(tone: str) -> str:
    """sipp's own RFC 4733 recordings, one digit each."""
    name = {"#": "pound", "*": "star"}.get(tone, tone)
    return str(DTMF_PCAPS / f"dtmf_2833_{name}.pcap")


def _invite(number: str) -> str:
    return _send(
        "INVITE sip:" + number + "@[remote_ip]:[remote_port] SIP/2.0\n"
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        "From: <sip:+15557654321@[local_ip]>;tag=[pid]caller[call_number]\n"
        "To: <sip:" + number + "@[remote_ip]>\nCall-ID: [call_id]\nCSeq: 1 INVITE\n"
        "Contact: <sip:caller@[local_ip]:[local_port]>\nMax-Forwards: 70\n"
        "Content-Type: application/sdp\nContent-Length: [len]\n\n" + _SDP,
        raw=True,
    )


def _ack(refused: str | None = None) -> str:
    """The ACK of a 2xx: a transaction of its own (new branch), to the answer's Contact.

    With ``refused`` (the number called), the ACK of a final refusal (RFC 3261 17.1.1.3): part
    of the INVITE's transaction, so its Request-URI and branch are the INVITE's (``[branch-4]``:
    the INVITE is four messages back). A new branch there matches nothing, and the server
    retransmits its refusal for 32 s, into whatever listens at this port next.
    """
    target, branch = (
        ("sip:" + refused + "@[remote_ip]:[remote_port]", "[branch-4]") if refused else ("[next_url]", "[branch]")
    )
    return _send(
        f"ACK {target} SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}\n"
        "From: <sip:+15557654321@[local_ip]>;tag=[pid]caller[call_number]\n[last_To:]\nCall-ID: [call_id]\n"
        "CSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
        raw=True,
    )


def caller_xml(number: str, digits: str, *, pause_ms: int = 0, then_play: str | None = None) -> str:
    """A phone calling in through the trunk: INVITE; once answered, waits ``pause_ms`` (a caller
    listening to a greeting), keys ``digits``, plays ``then_play`` (a pcap), then waits for BYE."""
    steps = [
        _invite(number),
        '<recv response="100" optional="true"/>',
        '<recv response="180" optional="true"/>',
        '<recv response="200" rtd="true"/>',
        _ack(),
    ]
    if pause_ms:
        steps.append(f'<pause milliseconds="{pause_ms}"/>')
    for tone in digits:
        steps += [
            f'<nop><action><exec play_pcap_audio="{dtmf_pcap(tone)}"/></action></nop>',
            '<pause milliseconds="400"/>',
        ]
    if then_play is not None:
        steps.append(f'<nop><action><exec play_pcap_audio="{then_play}"/></action></nop>')
    steps += [_recv("BYE"), _reply("200 OK")]
    return _scenario(steps)


def refused_caller_xml(number: str, status: int) -> str:
    """A caller whose INVITE must be refused with ``status`` (then it ACKs the refusal)."""
    return _scenario(
        [
            _invite(number),
            '<recv response="100" optional="true"/>',
            '<recv response="180" optional="true"/>',
            f'<recv response="{status}"/>',
            _ack(refused=number),
        ]
    )


class Carrier:
    """One sipp UAS on a port, serving one call with a scenario; ``finish()`` returns its exit status."""

    def __init__(
        self,
        folder: Path,
        port: int,
        scenario: Scenario | str,
        *,
        echo: bool = False,
        call: str | None = None,
        calls: int = 1,
        address: str = "127.0.0.1",
    ) -> None:
        """``scenario``: what to do with an INVITE (``calls`` of them), or a UAC scenario's XML to ``call``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        path = folder / "carrier.xml"
        path.write_text(scenario if isinstance(scenario, str) else scenario.xml())
        media_port = free_udp_port()
        args = [
            "sipp",
            *([call] if call else []),
            "-sf",
            str(path),
            "-i",
            address,
            "-p",
            str(port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(media_port),
            "-m",
            str(calls),
            "-timeout",
            "60s",
            "-default_behaviors",
            "all,-abortunexp",
            "-trace_err",
            "-error_file",
            str(folder / "errors.log"),
            "-trace_msg",
            "-message_file",
            str(folder / "messages.log"),
        ]
        if echo:
            args.append("-rtp_echo")
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder
        )

    def finish(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def errors(self) -> str:
        path = self.folder / "errors.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Softphone:
    """baresip (Debian's) as the phone at a trunk's port: answers every call at once, sends a sine
    tone, and keys digits on command through its ``ctrl_tcp`` JSON interface (RFC 4733 events)."""

    def __init__(self, folder: Path, port: int, number: str, tone_hz: float = TONE_HZ) -> None:
        """``number``: what it answers to (baresip takes only calls to its account's user)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.control_port = free_tcp_port()
        modules = ["g711", "ausine", "aubridge", "account", "menu", "ctrl_tcp"]
        config = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{port}",
            f"ctrl_tcp_listen 127.0.0.1:{self.control_port}",
            f"audio_source ausine,{int(tone_hz)}",
            "ausrc_srate 48000",  # ausine's only rate and layout; baresip resamples to G.711's 8 kHz mono
            "ausrc_channels 2",
            "audio_player aubridge,nowhere",  # what it hears goes nowhere: the test listens in the call
            "module_path /usr/lib/baresip/modules",
            *(f"module {name}.so" for name in modules),
        ]
        (folder / "config").write_text("\n".join(config) + "\n")
        account = f"<sip:{number}@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU"
        (folder / "accounts").write_text(account + "\n")
        self.log = (folder / "baresip.log").open("wb")
        self.process = subprocess.Popen(
            ["baresip", "-f", str(folder)], stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait_ready(folder / "baresip.log")

    def _wait_ready(self, log: Path, timeout: float = 15) -> None:
        """Until its control port answers (its modules load after SIP listens), or say why it died."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.control_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"baresip did not start: {log.read_text(errors='replace')[-1500:]}")

    def command(self, command: str, params: str = "") -> None:
        """One ctrl_tcp command (a netstring of JSON), e.g. ``command("sndcode", "1")``."""
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as control:
            control.sendall(str(len(body)).encode() + b":" + body + b",")
            control.recv(4096)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
