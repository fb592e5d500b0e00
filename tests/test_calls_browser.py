"""The browser client (web/) in headless Chromium with fake devices, in a call with an aiortc peer."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page

from tests.browsers import Launch
from tests.calls import CallWorld, Member, hears, stops_hearing
from vrooms.client import PatternSource


@pytest.fixture
async def browser(launch: Launch) -> Browser:
    """Chromium with a fake camera (a test picture) and microphone (a beep)."""
    return await launch()


async def open_developer_page(browser: Browser, world: CallWorld, member: Member, room: str, name: str) -> Page:
    page = await browser.new_page()
    fragment = urlencode({"token": member.token, "room": room, "name": name, "autojoin": 1, "camera": 1})
    await page.goto(f"{world.server.endpoint}/web/index.html#{fragment}")
    await page.wait_for_function("window.vroomsCall && window.vroomsCall.state === 'Connected'", timeout=20_000)
    return page


async def test_a_browser_and_an_aiortc_peer_see_and_hear_each_other(world: CallWorld, browser: Browser) -> None:
    presenter, attendee, consumer = world.user(), world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee", consumer: "Consumer"})
    python = await world.join(presenter, room, 500)
    await python.start_video(PatternSource())
    page = await open_developer_page(browser, world, attendee, room, "Chromium")
    browser_id = await page.evaluate("window.vroomsCall.participantId")
    assert await page.evaluate("window.vroomsCall.role") == "Attendee"

    # Python receives the browser's fake camera and its beeping microphone (through the mix).
    await python.wait_until(lambda: python.video_frames(browser_id) > 15, 20)
    await python.wait_until(lambda: python.remote_audio is not None and python.remote_audio.level() > 0.005, 20)
    # The browser receives Python's tone (mixed audio) and decodes its camera.
    await page.wait_for_function(
        "window.vroomsCall.inboundStats().then(s => s.audioPackets > 100 && s.videoFramesDecoded > 15)",
        timeout=20_000,
        polling=250,
    )
    selector = f'video[data-participant="{python.participant_id}"][data-source="camera"]'
    await page.wait_for_function(f"document.querySelector('{selector}')?.videoWidth === 320", timeout=10_000)

    # A Consumer's browser cannot publish, even by calling the client library directly.
    viewer = await open_developer_page(browser, world, consumer, room, "Viewer")
    assert await viewer.evaluate("document.getElementById('camera').disabled")
    refusal = await viewer.evaluate(
        """async () => {
            const camera = await navigator.mediaDevices.getUserMedia({ video: true });
            try { await window.vroomsCall.startVideo(camera); return "published"; }
            catch (error) { return error.code; }
        }"""
    )
    assert refusal == "NotAllowed"
    await python.end_for_all()
    await page.wait_for_function("window.vroomsCall.state === 'Disconnected'", timeout=10_000)
    assert await page.evaluate("window.vroomsCall.endReason") == "EndedForAll"


async def test_the_browser_client_moderates_shares_holds_and_follows_its_permissions(
    world: CallWorld, browser: Browser
) -> None:
    presenter, attendee, listener = world.user(), world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee", listener: "Consumer"})
    a = await world.join(attendee, room, 700)
    c = await world.join(listener, room)
    page = await open_developer_page(browser, world, presenter, room, "Chromium")
    browser_id = await page.evaluate("window.vroomsCall.participantId")
    await hears(c, 700)

    await page.evaluate(f"window.vroomsCall.muteParticipant('{a.participant_id}')")
    await a.wait_until(lambda: a.muted)
    await stops_hearing(c, 700)

    await page.evaluate(
        """async () => {
            const screen = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 } });
            await window.vroomsCall.startScreenShare(screen);
        }"""
    )
    await c.wait_until(lambda: c.video_frames(browser_id, "screen") > 5, 20)
    await c.wait_until(lambda: c.video_frames(browser_id, "camera") > 5, 20)

    await page.evaluate("window.vroomsCall.hold()")
    await c.wait_until(lambda: c.participants[browser_id]["state"] == "OnHold")
    assert await page.evaluate("window.vroomsCall.remoteAudio.getAudioTracks().every((t) => !t.enabled)")
    await page.evaluate("window.vroomsCall.resume()")
    await c.wait_until(lambda: c.participants[browser_id]["state"] == "Connected")

    await asyncio.to_thread(world.set_role, room, presenter, "Consumer")
    await page.wait_for_function(
        "!window.vroomsCall.capabilities.includes('sendVideo') && window.vroomsCall.publishing.length === 0",
        timeout=1_000,
    )
    await c.wait_until(lambda: not c.participants[browser_id]["camera"], timeout=1.0)
    await c.wait_until(lambda: not c.participants[browser_id]["screenShare"], timeout=1.0)
    refusal = await page.evaluate(
        f"window.vroomsCall.muteParticipant('{a.participant_id}').then(() => 'muted', (error) => error.code)"
    )
    assert refusal == "NotAllowed"
