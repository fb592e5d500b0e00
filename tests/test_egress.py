"""Outbound URLs an app names: the egress policy at every hop and at the address connected to, and
prompt fetching bounded in size, format and rendered length. Real local HTTP servers (aiohttp) on
127.0.0.1, 127.0.0.2 and ::1; real espeak-ng and ffmpeg."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.phones import write_tone_wav
from tests.servers import Server, signed
from tests.test_events_store import subscription
from tests.webhooks import Receiver
from vrooms.automation.fetch import FetchFailed, fetch, sniff
from vrooms.automation.prompts import MAX_CLIP_SECONDS, PromptError, PromptRenderer, Source
from vrooms.egress import EgressPolicy, EgressRefused, address_class
from vrooms.events import webhooks

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Site:
    """One HTTP server; ``hits`` counts the requests that reached it (a refused fetch makes none)."""

    url: str
    hits: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def serving(host: str, handler: Handler) -> AsyncIterator[Site]:
    site_ = Site("")

    async def counted(request: web.Request) -> web.StreamResponse:
        site_.hits.append(request.path)
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counted)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, host, 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    site_.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    try:
        yield site_
    finally:
        await runner.cleanup()


def redirect_to(target: str, status: int = 302) -> Handler:
    async def handle(_: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": target})

    return handle


def body(data: bytes, *, chunk: int = 16 * 1024) -> Handler:
    """Sends ``data`` in chunks with pauses, as a slow network would: a reader that takes only what
    is buffered gets a part of it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await response.prepare(request)
        for start in range(0, len(data), chunk):
            await response.write(data[start : start + chunk])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    return handle


LISTED = EgressPolicy.parse("VROOMS_EGRESS_PROMPTS", "127.0.0.1")


def test_address_classes_keep_link_local_and_mapped_loopback_out_of_public() -> None:
    public = EgressPolicy.parse("P", "public")
    assert address_class(ipaddress.ip_address("8.8.8.8")) == "public"
    assert address_class(ipaddress.ip_address("100.64.1.1")) == "private"
    assert address_class(ipaddress.ip_address("fd00::1")) == "private"
    assert address_class(ipaddress.ip_address("169.254.169.254")) is None  # the cloud's metadata service
    assert not public.allows_literal("http://[::ffff:127.0.0.1]/a.wav")
    assert not public.allows_literal("http://169.254.169.254/latest/meta-data")
    assert public.allows_literal("http://example.org/a.wav")  # a name: the resolver decides
    assert EgressPolicy.parse("P", "169.254.0.0/16").allows_literal("http://169.254.169.254/")


async def test_a_name_that_does_not_resolve_is_refused_not_taken_for_public() -> None:
    with pytest.raises(EgressRefused, match="does not resolve"):
        await EgressPolicy.parse("P", "public").check("http://no-such-host.invalid/a.wav")


async def test_redirects_to_hosts_the_policy_refuses_are_not_followed(tmp_path: Path) -> None:
    async def never(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"RIFF")

    async with (
        serving("127.0.0.2", never) as other,
        serving("::1", never) as v6,
        serving("127.0.0.1", never) as same_address,
    ):
        targets = [f"{other.url}/a.wav", f"{v6.url}/a.wav", same_address.url.replace("127.0.0.1", "localhost")]
        for status in (301, 302, 307):
            for target in targets:
                async with serving("127.0.0.1", redirect_to(target, status)) as allowed:
                    with pytest.raises(FetchFailed, match="refused"):
                        await fetch(f"{allowed.url}/start.wav", tmp_path / "in", LISTED, 1 << 20)
                    assert allowed.hits == ["/start.wav"]
    assert other.hits == v6.hits == same_address.hits == []


async def test_the_address_connected_to_is_checked_not_only_the_name() -> None:
    """``localhost`` passes no check by name; the connector still refuses its loopback addresses."""

    async def ok(_: web.Request) -> web.StreamResponse:
        return web.Response(text="secret")

    async with serving("127.0.0.1", ok) as internal:
        url = internal.url.replace("127.0.0.1", "localhost")
        policy = EgressPolicy.parse("P", "public")
        async with aiohttp.ClientSession(connector=policy.connector()) as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get(url)
    assert internal.hits == []


async def test_a_whole_prompt_is_fetched_and_one_over_the_cap_fails(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "long.wav", 130, 440.0).read_bytes()  # 4.2 MB
    assert len(wav) > 4_000_000
    async with serving("127.0.0.1", body(wav)) as site:
        kind = await fetch(f"{site.url}/long.wav", tmp_path / "in", LISTED, 20 << 20)
        assert kind == "wav" and (tmp_path / "in").read_bytes() == wav
        with pytest.raises(FetchFailed, match="larger than 1 MB"):
            await fetch(f"{site.url}/long.wav", tmp_path / "in", LISTED, 1 << 20)
        renderer = PromptRenderer(tmp_path / "cache", None, LISTED, 64 << 20)
        async with renderer.clip([Source("file", f"{site.url}/long.wav")]) as clip:
            assert 129.5 < clip.seconds < 130.5  # the whole clip, not its first buffered kilobytes
        assert list((tmp_path / "cache").iterdir()) == []  # a URL's clip is not kept after its play


async def test_only_wav_and_mp3_are_played_by_their_content(tmp_path: Path) -> None:
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "wav"
    assert sniff(b"ID3\x04\x00") == "mp3"
    assert sniff(b"\xff\xfb\x90\x00") == "mp3"
    assert sniff(b"<!DOCTYPE html>") is None
    renderer = PromptRenderer(tmp_path / "cache", None, LISTED, 64 << 20)
    for data in (b"<!DOCTYPE html><html><body>hello</body></html>" * 100, b"\x01" * (2 << 20)):
        async with serving("127.0.0.1", body(data)) as site:
            with pytest.raises(PromptError, match="not a WAV or MP3") as refused:
                async with renderer.clip([Source("file", f"{site.url}/x.wav")]):
                    pass
            assert not refused.value.download  # FILE_INVALID (8535), not a download failure


async def test_ssml_that_stretches_past_the_longest_clip_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    ssml = '<speak version="1.0">' + 'a <break time="100000ms"/>' * 36 + "</speak>"
    renderer = PromptRenderer(tmp_path / "cache", None, LISTED, 64 << 20)
    with pytest.raises(PromptError, match="longer than"):
        async with renderer.clip([Source("ssml", ssml)]):
            pass
    assert MAX_CLIP_SECONDS < 36 * 100
    assert list((tmp_path / "cache").iterdir()) == []


async def test_a_render_cancelled_midway_leaves_no_partial_clip(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path / "cache", None, LISTED, 64 << 20)
    text = [Source("text", "This prompt is long enough to be cancelled while it renders. " * 20)]
    task = asyncio.ensure_future(renderer.clip(text).__aenter__())
    while not any((tmp_path / "cache").glob("*.part")):  # espeak-ng is writing
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []
    async with renderer.clip(text) as clip:  # the next play renders it whole
        assert clip.seconds > 10


async def test_the_cache_stays_under_its_size_and_never_drops_a_clip_in_use(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path / "cache", None, LISTED, 300_000)
    async with renderer.clip([Source("text", "Held while the others come and go. " * 4)]) as held:
        for n in range(4):
            async with renderer.clip([Source("text", f"Prompt number {n}, a few seconds of speech.")]):
                pass
        assert held.wav.exists() and held.opus.exists()
    sizes = sum(p.stat().st_size for p in (tmp_path / "cache").iterdir())
    assert sizes <= 300_000


# -- the server's own defaults: private networks yes, loopback and link-local no ------------------

DEFAULTS = {f"VROOMS_EGRESS_{kind}": "public,private" for kind in ("CALLBACKS", "STREAMING", "WEBHOOKS")}


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("egress"), extra_env=DEFAULTS).start()
    yield server
    server.stop()


def test_callbacks_streaming_webhooks_and_recordings_are_refused_internal_addresses(default_server: Server) -> None:
    """Each URL an app names is refused with a 400 naming its field, before anything is opened."""
    receiver = Receiver().start()
    try:
        hook = signed(
            default_server, "PUT", "/eventSubscriptions/inside?api-version=2026-11-25", {"endpointUrl": receiver.url}
        )
        assert hook.status_code == 400 and hook.json()["error"]["target"] == "endpointUrl"
        assert "VROOMS_EGRESS_WEBHOOKS" in hook.json()["error"]["message"]
        assert receiver.deliveries == 0 and receiver.events == []
    finally:
        receiver.stop()
    room = {"kind": "roomCallLocator", "roomId": "99999"}
    for body, field_ in [
        ({"callLocator": room, "callbackUri": "http://127.0.0.1:9/cb"}, "callbackUri"),
        ({"callLocator": room, "callbackUri": "http://169.254.169.254/latest/meta-data"}, "callbackUri"),
        (
            {
                "callLocator": room,
                "callbackUri": "https://10.0.0.7/cb",
                "mediaStreamingOptions": {
                    "transportUrl": "ws://[::1]:9/stream",
                    "transportType": "websocket",
                    "contentType": "audio",
                    "audioChannelType": "mixed",
                },
            },
            "mediaStreamingOptions.transportUrl",
        ),
    ]:
        refused = signed(default_server, "POST", "/calling/callConnections:connect?api-version=2026-03-12", body)
        assert refused.status_code == 400 and refused.json()["error"]["target"] == field_, refused.text


async def test_five_plays_of_one_new_prompt_at_once_each_get_the_whole_clip(tmp_path: Path) -> None:
    """Each render writes its own temporary files and renames them whole: none reads another's
    half-written clip, and one clip is left in the cache."""
    renderer = PromptRenderer(tmp_path / "cache", None, LISTED, 64 << 20)
    text = [Source("text", "Five callers hear this at the same moment.")]

    async def play() -> float:
        async with renderer.clip(text) as clip:
            return clip.seconds

    lengths = await asyncio.gather(*(play() for _ in range(5)))
    assert len(set(lengths)) == 1 and lengths[0] > 1
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".opus", ".wav"]


async def test_a_delivery_follows_no_redirect_and_never_reaches_a_refused_address() -> None:
    """Event Grid follows no redirect: a 307 is the delivery's answer (retried later), and the
    listener it points to hears nothing; a subscription whose endpoint is an address the policy
    refuses gets no connection at all."""

    async def ok(_: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async with (
        serving("127.0.0.2", ok) as elsewhere,
        serving("127.0.0.1", redirect_to(f"{elsewhere.url}/hook", 307)) as hook,
    ):
        policy = EgressPolicy.parse("VROOMS_EGRESS_WEBHOOKS", "loopback")
        endpoint = replace(subscription("redirected"), endpoint=f"{hook.url}/hook")
        async with aiohttp.ClientSession(connector=policy.connector()) as session:
            assert await webhooks.deliver(session, policy, endpoint, [], "topic", 1) == 307
            public = EgressPolicy.parse("VROOMS_EGRESS_WEBHOOKS", "public")
            assert await webhooks.deliver(session, public, endpoint, [], "topic", 1) is None
        assert hook.hits == ["/hook"]  # the first delivery only
    assert elsewhere.hits == []
