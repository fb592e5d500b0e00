"""Watching parts for hangs: the heartbeat's rule (a fake probe, a rule test), restart back-off,
and sippy's real thread blocked inside a child Python process (its reactor is a process-wide
singleton, so it runs apart from the test process)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap

from tests.phones import free_udp_port
from vrooms.supervision import Backoff, TaskSet, heartbeat, to_the_end


async def test_a_probe_that_hangs_or_fails_twice_in_a_row_is_reported_with_why() -> None:
    answers = iter([None, TimeoutError, None, TimeoutError, TimeoutError])

    async def probe() -> None:
        answer = next(answers)
        if answer is TimeoutError:
            await asyncio.Event().wait()  # hangs: the heartbeat's timeout ends it

    reason = await heartbeat(probe, every=0.001, timeout=0.2, misses=2)
    assert reason == "no answer within 0.2 s"
    assert next(answers, "spent") == "spent"  # a single miss between answers was forgiven

    async def refused() -> None:
        raise ConnectionResetError("gone")

    assert await heartbeat(refused, every=0.001, timeout=1, misses=2) == "ConnectionResetError: gone"


def test_backoff_doubles_to_its_ceiling_with_jitter_and_resets() -> None:
    backoff = Backoff(first=1.0, most=4.0)
    delays = [backoff.next() for _ in range(5)]
    for delay, step in zip(delays, [1, 2, 4, 4, 4], strict=True):
        assert 0.75 * step <= delay <= 1.25 * step
    backoff.reset()
    assert backoff.next() <= 1.25


async def test_a_task_set_keeps_what_runs_and_cancels_what_is_left() -> None:
    tasks = TaskSet()

    async def breaks() -> None:
        raise RuntimeError("broken")

    tasks.spawn(breaks())
    waiting = tasks.spawn(asyncio.Event().wait())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(tasks) == 1
    await tasks.cancel_all()
    assert waiting.cancelled() and len(tasks) == 0


_SIP_THREAD = """
import asyncio, threading, time
from vrooms.pstn.sip import CallLimits, SipStack, TrunkAddress
from vrooms.supervision import heartbeat

async def main():
    trunk = TrunkAddress("127.0.0.1", 5, None, None, "+15550000001", "127.0.0.1", PORT, False, frozenset({"127.0.0.1"}))
    stack = SipStack(trunk, lambda call: None, CallLimits(1, 1))
    await stack.start()
    await asyncio.wait_for(stack.probe(), 2)
    print("answers")
    blocked = threading.Event()
    stack.in_sip_thread(blocked.wait, 30)  # the thread hangs, as in a deadlock
    started = time.monotonic()
    reason = await heartbeat(stack.probe)
    print("hung:", reason, round(time.monotonic() - started, 1))
    blocked.set()

asyncio.run(main())
"""


def test_a_hung_sip_thread_is_found_by_its_heartbeat() -> None:
    script = textwrap.dedent(_SIP_THREAD).replace("PORT", str(free_udp_port()))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "answers"
    assert lines[1].startswith("hung: no answer within 1.5 s")
    assert float(lines[1].split()[-1]) < 5.0  # the bound, measured in the child


async def test_a_cleanup_runs_to_its_end_through_repeated_cancels_then_the_cancel_goes_on() -> None:
    """A rule test: the caller is cancelled twice while its cleanup runs; the cleanup finishes
    before the caller ends, and the caller still ends cancelled."""
    released = asyncio.Event()
    gate = asyncio.Event()

    async def cleanup() -> None:
        await gate.wait()
        released.set()

    async def caller() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await to_the_end(cleanup())

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # a second cancel while the cleanup waits
    await asyncio.sleep(0)
    assert not task.done()
    gate.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled() and released.is_set()
