"""Through a real SIP proxy: kamailio registers vrooms (401), challenges its INVITE (407),
Record-Routes the dialog, and DTMF crosses it both ways."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.calls import CallWorld
from tests.phones import PASSWORD, USER, Carrier, Scenario, dtmf_pcap, free_udp_port
from tests.servers import Server, eventually

NUMBER = "+15551234567"
CONFIG = Path(__file__).parent / "sip" / "kamailio.cfg"


class Kamailio:
    def __init__(self, folder: Path, port: int, carrier_port: int) -> None:
        config = CONFIG.read_text()
        for name, value in (("PROXY_PORT", port), ("CARRIER_PORT", carrier_port), ("PASSWORD", PASSWORD)):
            config = config.replace(name, str(value))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "kamailio.cfg").write_text(config)
        self.port = port
        self.log = folder / "kamailio.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    "kamailio",
                    "-f",
                    str(folder / "kamailio.cfg"),
                    "-DD",
                    "-E",
                    "-m",
                    "64",
                    "-M",
                    "8",
                    "-Y",
                    str(folder),
                    "-w",
                    str(folder),
                ],
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def carrier_port() -> int:
    return free_udp_port()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, carrier_port: int) -> Iterator[Kamailio]:
    started = Kamailio(tmp_path_factory.mktemp("kamailio"), free_udp_port(), carrier_port)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory, proxy: Kamailio) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("proxied"),
        log_level="info",
        extra_env={
            "VROOMS_SIP_TRUNK_URI": f"sip:127.0.0.1:{proxy.port};transport=udp",
            "VROOMS_SIP_TRUNK_USERNAME": USER,
            "VROOMS_SIP_TRUNK_PASSWORD": PASSWORD,
            "VROOMS_SIP_CALLER_ID": "+15550000001",
            "VROOMS_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
            "VROOMS_SIP_REGISTER": "true",
        },
    ).start()
    yield server
    server.stop()


async def test_dial_out_through_kamailio_with_registration_and_dtmf(
    proxied_server: Server, proxy: Kamailio, carrier_port: int, tmp_path: Path
) -> None:
    eventually(lambda: "REGISTERED" in proxy.text() or None, timeout=15)
    world = CallWorld(proxied_server)
    # The digit three times, 0.5 s apart: a lone one, played 0.5 s after the answer, went
    # unreported once in a loaded full-suite run (1 in 3; cause not found, logs gone by then).
    keyed = Scenario(auth=False, play=[dtmf_pcap("4")] * 3)
    phone = Carrier(tmp_path / "carrier", carrier_port, keyed, echo=True)
    try:
        presenter = world.user()
        room_id = world.room({presenter: "Presenter"})
        world.rooms.update_room(room_id=room_id, pstn_dial_out_enabled=True)
        call = await world.join(presenter, room_id)
        participant_id = await call.dial_out(NUMBER)

        def tones() -> list[str]:
            return [e["tone"] for e in call.events if e.get("type") == "dtmfReceived"]

        await call.wait_until(lambda: "4" in tones(), 20)
        await call.send_dtmf(participant_id, "9")
        await call.wait_until(lambda: "9" in tones(), 10)
        await call.remove_participant(participant_id)
        assert phone.finish() == 0, phone.errors()
        log = proxy.text()
        assert "REQUEST INVITE" in log and "REQUEST BYE" in log  # the BYE followed the Record-Route
        messages = (tmp_path / "carrier" / "messages.log").read_text()
        assert "Record-Route:" in messages
    finally:
        phone.stop()
        await world.close()
