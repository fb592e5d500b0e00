"""Browser call UI benchmark: time to the first remote video frame, and the CPU of a 9-tile grid.

Run: ``scripts/bench ui`` (or ``.venv/bin/python -m bench.ui``). Starts a real server (its call
host and Janus) and headless Chromium (Debian's, fake devices) through Playwright.

- First remote frame: an aiortc Presenter publishes a 320x240 camera; a fresh browser page
  loads the call UI (``/web/call/#…``), presses "Join call" as soon as it is enabled, and the
  time runs from the page's navigation start to the Presenter's tile showing a decoded
  frame. Baseline in the same run: the bare ``vrooms.js`` developer page (``/web/#autojoin=1``)
  joining the same room, to the same first frame. p50/p95 over ``--joins`` joins each.
- Camera switch: the browser's call swaps its camera for a newly opened one, and an aiortc
  viewer's longest wait between two frames in the 3 s from the switch is measured; the way the
  Devices panel switches (``replaceVideo``: the same feed, the track replaced) against
  republishing (``startVideo``: unpublish, publish, the viewer's renegotiation), ``--switches``
  rounds each, alternating.
- 9-tile grid: eight aiortc participants with cameras and one browser (its self-view the
  ninth tile); the CPU of all of that browser's processes over ``--seconds``, in % of one
  core, beside Janus, the call host and the load generator (the aiortc encoders).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Browser, Page, async_playwright

from bench.calls import CpuMeter, cpu_seconds
from bench.stats import percentile, save
from tests import browsers
from tests.calls import CallWorld, Member, sees_video
from tests.servers import Server
from vrooms.client import Call, PatternSource

FLAGS = [*browsers.FLAGS, "--use-fake-device-for-media-stream"]
SWITCH_WINDOW_S = 3.0


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 1), "p95": round(percentile(values, 0.95), 1)}


def _has_frame(participant_id: str, selector: str) -> str:
    """A page expression: whether the participant's video element has decoded a frame."""
    return f"document.querySelector('{selector.format(id=participant_id)}')?.videoWidth > 0"


async def _time_to_frame(page: Page, url: str, ready: str, join: bool) -> float:
    """Milliseconds from the page's navigation start to ``ready`` (``performance.now()``)."""
    await page.goto(url)
    if join:
        await page.get_by_role("button", name="Join call").click(timeout=30_000)
    await page.wait_for_function(ready, timeout=30_000, polling=10)
    return float(await page.evaluate("performance.now()"))


async def first_frames(
    browser: Browser, world: CallWorld, room: str, viewer: Member, presenter: Call, joins: int
) -> dict[str, Any]:
    ui: list[float] = []
    bare: list[float] = []
    tile = 'figure[data-participant="{id}"][data-source="camera"] video'
    plain = 'video[data-participant="{id}"][data-source="camera"]'
    for _ in range(joins):
        for times, url, selector, join in (
            (ui, f"/web/call/#{urlencode({'room': room, 'token': viewer.token, 'name': 'Bench'})}", tile, True),
            (bare, f"/web/index.html#{urlencode({'token': viewer.token, 'room': room, 'autojoin': 1})}", plain, False),
        ):
            page = await browser.new_page()
            ready = _has_frame(presenter.participant_id, selector)
            times.append(await _time_to_frame(page, world.server.endpoint + url, ready, join))
            await page.close()
    ratio = round(_ms(ui)["p50"] / max(_ms(bare)["p50"], 0.1), 2)
    return {"joins": joins, "call_ui_ms": _ms(ui), "bare_vrooms_js_ms": _ms(bare), "ratio_p50": ratio}


async def _longest_stall(viewer: Call, publisher_id: str, seconds: float) -> float:
    """The longest time in ms, over ``seconds``, between two frames of the publisher's camera at
    the viewer (a republished camera arrives on a new track whose count starts again)."""
    loop = asyncio.get_running_loop()
    start = last = loop.time()
    longest, seen = 0.0, viewer.video_frames(publisher_id)
    while (now := loop.time()) - start < seconds:
        if (frames := viewer.video_frames(publisher_id)) != seen:
            longest, last, seen = max(longest, now - last), now, frames
        await asyncio.sleep(0.002)  # sampling period
    return round(1000 * max(longest, now - last), 1)


# A new camera in place of the one sent, by ``method``; the one before is released.
_SWAP = """async (method) => {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true });
  await window.vroomsUi.call[method](stream);
  for (const track of (window.benchCamera || window.vroomsUi.local.camera).getTracks()) track.stop();
  window.benchCamera = stream;
}"""


async def camera_switches(browser: Browser, world: CallWorld, switches: int) -> dict[str, Any]:
    publisher_user, viewer_user = world.user(), world.user()
    room = world.room({publisher_user: "Presenter", viewer_user: "Attendee"})
    viewer = await world.join(viewer_user, room, display_name="Viewer")
    page = await browser.new_page()
    await page.goto(f"{world.server.endpoint}/web/call/#{urlencode({'room': room, 'token': publisher_user.token})}")
    await page.get_by_role("button", name="Join call").click(timeout=30_000)
    await page.wait_for_function("window.vroomsUi.call?.publishing.includes('camera')", timeout=30_000)
    publisher_id = await page.evaluate("window.vroomsUi.call.participantId")
    await sees_video(viewer, publisher_id)
    stalls: dict[str, list[float]] = {"replaceVideo": [], "startVideo": []}
    for _ in range(switches):
        for method, times in stalls.items():
            measured = asyncio.create_task(_longest_stall(viewer, publisher_id, SWITCH_WINDOW_S))
            await page.evaluate(_SWAP, method)
            times.append(await measured)
    await page.close()
    await viewer.leave()
    result: dict[str, Any] = {"switches": switches, **{f"{m}_longest_gap_ms": _ms(t) for m, t in stalls.items()}}
    result["ratio_p50"] = round(_ms(stalls["startVideo"])["p50"] / max(_ms(stalls["replaceVideo"])["p50"], 0.1), 2)
    return result


def _new_chromium_processes(before: set[int]) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in before and "chromium" in _comm(int(p))]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


async def grid_cpu(world: CallWorld, server: Server, playwright: Any, seconds: float) -> dict[str, Any]:
    members = [world.user() for _ in range(9)]
    room = world.room({m: "Presenter" for m in members})
    calls = []
    for n, member in enumerate(members[:8]):
        calls.append(await world.join(member, room, display_name=f"Camera {n + 1}"))
        await calls[-1].start_video(PatternSource())
    before = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    browser = await playwright.chromium.launch(executable_path=browsers.CHROMIUM, args=FLAGS)
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        fragment = urlencode({"room": room, "token": members[8].token, "name": "Viewer"})
        await page.goto(f"{world.server.endpoint}/web/call/#{fragment}")
        await page.get_by_role("button", name="Join call").click(timeout=30_000)
        playing = "[...document.querySelectorAll('figure.tile video')].filter(v => v.videoWidth > 0).length >= 9"
        await page.wait_for_function(playing, timeout=60_000, polling=250)
        pids = _new_chromium_processes(before)
        meter = CpuMeter(server)
        meter.start()
        c0, t0 = sum(map(cpu_seconds, pids)), time.monotonic()
        await asyncio.sleep(seconds)  # the measurement window itself
        cpu = meter.stop()
        cpu["browser"] = round(100 * (sum(map(cpu_seconds, pids)) - c0) / (time.monotonic() - t0), 1)
        return {"tiles": 9, "seconds": seconds, "cpu_percent": cpu}
    finally:
        await browser.close()
        for call in calls:
            await call.leave()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="vrooms-bench-ui-"))
    server = Server(folder / "server", workers=1).start()
    try:
        world = CallWorld(server)
        presenter_user, viewer = world.user(), world.user()
        room = world.room({presenter_user: "Presenter", viewer: "Attendee"})
        presenter = await world.join(presenter_user, room, display_name="Presenter")
        await presenter.start_video(PatternSource())
        results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=browsers.CHROMIUM, args=FLAGS)
            print(f"Page load -> first remote video frame, {args.joins} joins each ...")
            results["first_frame"] = await first_frames(browser, world, room, viewer, presenter, args.joins)
            print(f"  {results['first_frame']}")
            print(f"Camera switches, {args.switches} of each kind ...")
            results["camera_switch"] = await camera_switches(browser, world, args.switches)
            print(f"  {results['camera_switch']}")
            await browser.close()
            await presenter.leave()
            print(f"A 9-tile grid for {args.seconds} s ...")
            results["grid"] = await grid_cpu(world, server, playwright, args.seconds)
            print(f"  {results['grid']}")
        await world.close()
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--switches", type=int, default=5)
    save("ui", asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
