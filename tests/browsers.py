"""Headless Chromium for the browser tests: a launcher with fake devices, and the call page's helpers.

Pages are driven as a person would: buttons found by their accessible names, waits on what
the page shows (a decoded video frame, a status text), never on time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright, expect

from tests.calls import CallWorld, Member
from tests.phones import write_tone_wav

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GRANT = "--use-fake-ui-for-media-stream"  # grant whatever is asked (without it, headless refuses)
FLAGS = [
    GRANT,
    "--ignore-certificate-errors",  # the server's generated CA is not Chromium's
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--autoplay-policy=no-user-gesture-required",
]

Launch = Callable[..., Awaitable[Browser]]

# Uncaught errors of the call pages, reported when the test ends (an exception raised inside
# Playwright's event handler would only close the page and hide the message).
_page_errors: list[str] = []


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as started:
        yield started


@pytest.fixture
async def launch(playwright: Playwright, tmp_path: Path) -> AsyncIterator[Launch]:
    """A Chromium per participant: with fake cameras and a microphone (playing a tone file, if
    given), or with no devices at all; ``grant=False``: every request for a device is refused,
    as when a person answers the browser's question with "Block"."""
    browsers: list[Browser] = []

    async def start(
        *, devices: bool = True, tone: float | None = None, cameras: int = 1, grant: bool = True
    ) -> Browser:
        flags = [flag for flag in FLAGS if grant or flag != GRANT]
        if devices:
            flags.append(f"--use-fake-device-for-media-stream=device-count={cameras}")
        if tone is not None:
            wav = tmp_path / f"tone-{int(tone)}.wav"
            write_tone_wav(wav, 10.0, tone)
            flags.append(f"--use-file-for-fake-audio-capture={wav}")
        browsers.append(await playwright.chromium.launch(executable_path=CHROMIUM, args=flags))
        return browsers[-1]

    _page_errors.clear()
    yield start
    for browser in browsers:
        await browser.close()
    assert not _page_errors, "\n".join(_page_errors)


async def open_call(browser: Browser, world: CallWorld, member: Member, room: str, name: str) -> Page:
    """The stand-alone call page, the token in the fragment; returns at the pre-join screen."""
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("pageerror", lambda error: _page_errors.append(f"{name}'s page: {error}"))
    fragment = urlencode({"room": room, "token": member.token, "name": name})
    await page.goto(f"{world.server.endpoint}/web/call/#{fragment}")
    await expect(page.get_by_role("button", name="Join call")).to_be_enabled(timeout=20_000)
    return page


async def join(page: Page) -> None:
    await page.get_by_role("button", name="Join call").click()
    await expect(page.get_by_role("button", name="Leave call")).to_be_visible(timeout=20_000)
    await expect(page.get_by_role("status").first).to_have_text("Connected", timeout=20_000)


def tile(page: Page, participant_id: str, source: str = "camera") -> Any:
    return page.locator(f'figure[data-participant="{participant_id}"][data-source="{source}"]')


async def shows_video(page: Page, participant_id: str, source: str = "camera") -> None:
    """The tile's video has decoded a frame and can be seen (laid out, not transparent)."""
    video = f'figure[data-participant="{participant_id}"][data-source="{source}"] video'
    seen = "(v => v && v.videoWidth > 0 && v.offsetWidth > 0 && getComputedStyle(v).opacity === '1')"
    await page.wait_for_function(f"{seen}(document.querySelector('{video}'))", timeout=20_000)


async def screenshot(page: Page, name: str) -> None:
    """With ``VROOMS_SCREENSHOTS=<folder>``, the page as it is now into ``<folder>/<name>.png``
    (the README's pictures); otherwise nothing."""
    folder = os.environ.get("VROOMS_SCREENSHOTS")
    if folder:
        # Every shown video has presented a few frames (the first decoded one may not be painted yet).
        videos = "[...document.querySelectorAll('video:not([hidden])')]"
        painted = f"{videos}.every(v => v.getVideoPlaybackQuality().totalVideoFrames > 5)"
        await page.wait_for_function(painted, timeout=20_000)
        await page.screenshot(path=str(Path(folder) / f"{name}.png"))
