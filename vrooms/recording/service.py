"""Call recording in the call host: start, pause, resume, stop, and the documents after.

Server-side, like the rest of Call Automation: no role may or may not record; a running
call may have one recording at a time. Its state changes go to the app as
``RecordingStateChanged`` callbacks (to ``recordingStateCallbackUri``, else to the callback
URI of the call connection named in the request), through a callback subscription of the
recording's own, so they are durable and ordered like every callback. When the documents
are written, ``RecordingFileStatusUpdated`` goes to Event Grid subscribers with the URLs the
SDK's ``download_recording`` / ``delete_recording`` use (``recording.routes`` serves them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from vrooms.api.times import format_rfc3339, now_micros
from vrooms.callbacks import ids, results
from vrooms.callbacks import writer as callbacks
from vrooms.calls import repository as calls_repository
from vrooms.calls.call import Call
from vrooms.calls.captioning import Transcripts
from vrooms.calls.interface import RoomCalls
from vrooms.calls.models import MediaSource
from vrooms.egress import EgressPolicy
from vrooms.errors import ApiError, not_found
from vrooms.events import repository as events_repository
from vrooms.events.models import Event, EventType
from vrooms.media.config import RECORDING_PART
from vrooms.media.tools import ToolFailed
from vrooms.recording import encode, transcript
from vrooms.recording.schemas import Channel, Content, StartRequest, state_response
from vrooms.recording.session import RecordingSession, feed_files, leg_file, mix_file
from vrooms.recording.store import Document, Phase, RecordingState, RecordingStore, Segment
from vrooms.supervision import TaskSet

log = logging.getLogger("vrooms.recording")

_CLOSE_WAIT_SECONDS = 10.0  # how long Janus may take to close a recording's files
SUBSCRIPTION_PREFIX = "recording-"  # callback subscriptions of recordings: callback:recording-<id>:<call>


class CallConnectionLike(Protocol):
    id: str
    call: Call
    callback_uri: str


def _conflict(message: str) -> ApiError:
    return ApiError(409, "Conflict", message)


class RecordingService:
    def __init__(
        self,
        calls: RoomCalls,
        connection_of: Callable[[str], CallConnectionLike],
        store: RecordingStore,
        transcripts: Transcripts,
        public_url: str,
        *,
        callback_retry_seconds: float,
        callback_policy: EgressPolicy,
    ) -> None:
        self.calls = calls
        self.connection_of = connection_of
        self.store = store
        self.transcripts = transcripts
        self.public_url = public_url
        self.sessions: dict[str, RecordingSession] = {}
        self._retry_seconds = callback_retry_seconds
        self._callback_policy = callback_policy
        self._writers: dict[str, callbacks.CallbackWriter] = {}
        self._tasks = TaskSet(log)

    # -- requests -----------------------------------------------------------------------------

    async def start(self, request: StartRequest) -> dict[str, Any]:
        call, connection_id, callback_uri = self._target(request)
        if request.callback_uri is not None:
            await callbacks.check_uri(self._callback_policy, request.callback_uri, "recordingStateCallbackUri")
        async with call.lock:
            if call.ended:
                raise not_found("The call has ended.", "callLocator")
            if call.recorder is not None:
                raise _conflict("This call is being recorded already; stop that recording first.")
            state = RecordingState(
                id=ids.with_room(call.room_id, secrets.token_urlsafe(24)),
                call_id=call.id,
                room_id=call.room_id,
                content=str(request.content),
                channel=str(request.channel),
                format=str(request.format),
                started_at=now_micros(),
            )
            session = RecordingSession(state, call, self.store.folder(state.id), lambda: self.calls.plane, self._ended)
            self.store.save(state)
            if callback_uri is not None:
                await self._open_callbacks(state, callback_uri, connection_id)
            call.recorder = session
            self.sessions[state.id] = session
        await self._hear_transcript(session)
        async with session.lock:
            if request.pause_on_start:
                state.phase = Phase.PAUSED
            else:
                await session.begin_segment()
            self.store.save(state)
            self._state_changed(state)
        kind = f"{state.content} {state.channel} {state.format}"
        log.info("recording %s of call %s started (%s)", state.id[:8], call.id, kind)
        return state_response(state.id, state.active)

    def _target(self, request: StartRequest) -> tuple[Call, str | None, str | None]:
        """The call to record, the connection named (if any) and where state changes go."""
        if request.connection_id is not None:
            connection = self.connection_of(request.connection_id)
            return connection.call, connection.id, request.callback_uri or connection.callback_uri
        if request.room_id is not None:
            call = self.calls.live_call(request.room_id)
            target = "callLocator.roomId"
        else:
            call = self.calls.find_call(request.server_call_id or "")
            target = "callLocator.serverCallId"
        if call is None or call.ended:
            raise not_found("No call is running there; a recording starts in a running call.", target)
        return call, None, request.callback_uri

    def get(self, recording_id: str) -> dict[str, Any]:
        session = self.sessions.get(recording_id)
        if session is not None:
            return state_response(recording_id, session.state.active)
        if self.store.load(recording_id) is None:
            raise not_found("No recording with this id.", "recordingId")
        return state_response(recording_id, False)

    async def pause(self, recording_id: str) -> None:
        session = self._session(recording_id)
        async with session.lock:
            if session.state.phase == Phase.ACTIVE:
                await session.end_segment(Phase.PAUSED)
                self.store.save(session.state)
                self._state_changed(session.state)

    async def resume(self, recording_id: str) -> None:
        session = self._session(recording_id)
        async with session.lock:
            if session.state.phase == Phase.PAUSED and not session.call.ended:
                await session.begin_segment()
                self.store.save(session.state)
                self._state_changed(session.state)

    async def stop(self, recording_id: str) -> None:
        await self._stop(self._session(recording_id), "StopRecording")

    def _session(self, recording_id: str) -> RecordingSession:
        session = self.sessions.get(recording_id)
        if session is None:
            if self.store.load(recording_id) is not None:
                raise _conflict("This recording has stopped.")
            raise not_found("No recording with this id.", "recordingId")
        return session

    def _ended(self, session: RecordingSession) -> None:
        self._tasks.spawn(self._stop(session, "CallEnded"))

    async def _stop(self, session: RecordingSession, reason: str) -> None:
        async with session.lock:
            if session.state.phase not in (Phase.ACTIVE, Phase.PAUSED):
                return
            was_active = session.state.active
            await session.end_segment(Phase.STOPPED)
            session.state.end_reason = reason
            self.store.save(session.state)
            if session.call.recorder is session:
                session.call.recorder = None
            self.sessions.pop(session.state.id, None)
            if was_active:
                self._state_changed(session.state)
        await self.transcripts.unlisten(session.call, _transcript_key(session.state))
        self._tasks.spawn(self.finish(session.state))

    # -- the documents ------------------------------------------------------------------------

    async def finish(self, state: RecordingState, *, recovered: bool = False) -> None:
        """Make the documents, tell Event Grid subscribers, close the callbacks; never raises."""
        folder = self.store.folder(state.id)
        try:
            await _closed_by_janus(folder)
            state.documents = await self._documents(state, folder)
            state.phase = Phase.DONE
        except (ToolFailed, OSError) as exc:
            state.encode_attempts += 1
            log.error(
                "recording %s could not be finished (attempt %d; its raw media are kept): %s",
                state.id[:8],
                state.encode_attempts,
                exc,
            )
            state.phase = Phase.FAILED
            state.end_reason = state.end_reason or "EncodingFailed"
        if state.phase == Phase.DONE:  # the raw media go only once the documents exist
            raws = [*folder.glob("*.mjr"), *folder.glob(f"*{encode.DECODED}*"), *folder.glob("mix-*.wav")]
            for raw in [*raws, folder / transcript.LINES]:
                raw.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.store.save(state)
        await self._announce(state, recovered=recovered)

    async def _documents(self, state: RecordingState, folder: Path) -> list[Document]:
        documents = await self._media_documents(state, folder)
        if transcript.write_vtt(folder):
            documents.append(Document(f"{state.id}-transcript", transcript.FILE, None, state.duration_ms))
        return documents

    async def _media_documents(self, state: RecordingState, folder: Path) -> list[Document]:
        if state.channel == Channel.MIXED:
            pieces = [encode.Piece(_existing(mix_file(folder, s.index)), 0, s.duration_ms) for s in state.segments]
            if state.content == Content.AUDIO_VIDEO:
                return [await _video_document(state, folder, pieces)]
            return [await self._document(state, folder, 0, None, pieces)]
        documents = []
        for n, (participant_id, raw_id) in enumerate(state.legs.items()):
            pieces = [await _leg_piece(leg_file(folder, s.index, participant_id), s) for s in state.segments]
            documents.append(await self._document(state, folder, n, raw_id, pieces))
        return documents

    @staticmethod
    async def _document(
        state: RecordingState, folder: Path, index: int, participant: str | None, pieces: list[encode.Piece]
    ) -> Document:
        name = f"document-{index}.{state.format}"
        await encode.assemble(pieces, folder / name, state.format)
        return Document(f"{state.id}-{index}", name, participant, sum(p.duration_ms for p in pieces))

    async def _hear_transcript(self, session: RecordingSession) -> None:
        """The call's captions and transcriptions while they run, into the recording's transcript."""
        sink = transcript.TranscriptWriter(session.folder, session.state).caption
        await self.transcripts.listen(session.call, _transcript_key(session.state), None, sink)

    # -- telling the app ------------------------------------------------------------------------

    async def _open_callbacks(self, state: RecordingState, uri: str, connection_id: str | None) -> None:
        key = f"{SUBSCRIPTION_PREFIX}{state.id}"
        name = callbacks.subscription_name(key, state.call_id)
        async with self.calls.database.write() as conn:
            await callbacks.open_subscription(conn, key, state.call_id, uri)
        state.callback_subscription = name
        state.connection_id = connection_id
        self._writers[state.id] = callbacks.CallbackWriter(
            self.calls.database, name, self._retry_seconds, self.calls.events_written
        )

    def _state_changed(self, state: RecordingState, result: results.Result | None = None) -> None:
        writer = self._writers.get(state.id)
        if writer is None:
            return
        key = f"{SUBSCRIPTION_PREFIX}{state.id}"
        data = {
            "callConnectionId": state.connection_id or "",
            "serverCallId": state.call_id,
            "correlationId": state.call_id,
            "recordingId": state.id,
            "state": "active" if state.active else "inactive",
            "startDateTime": format_rfc3339(state.started_at),
            "recordingKind": "azureCommunicationServices",
            **({"resultInformation": result.wire()} if result is not None else {}),
        }
        writer.emit(callbacks.event(key, EventType.RECORDING_STATE_CHANGED, data))

    async def _announce(self, state: RecordingState, *, recovered: bool) -> None:
        if state.phase == Phase.FAILED:
            self._state_changed(state, results.RECORDING_FAILED)
        elif recovered:
            self._state_changed(state, results.RECORDING_RECOVERED)
        writer = self._writers.pop(state.id, None)
        if writer is not None:
            writer.close()
        if state.phase != Phase.DONE:
            return
        async with self.calls.database.write() as conn:
            await events_repository.append(conn, self.file_status_event(state))
        self.calls.events_written()

    def file_status_event(self, state: RecordingState) -> Event:
        """``AcsRecordingFileStatusUpdatedEventData``: one chunk per document."""
        base = f"{self.public_url}/recordings/{state.id}"
        chunks = [
            {
                "documentId": d.document_id,
                "index": n,
                "endReason": state.end_reason,
                "contentLocation": f"{base}/documents/{d.document_id}/content",
                "metadataLocation": f"{base}/documents/{d.document_id}/metadata",
                "deleteLocation": base,
            }
            for n, d in enumerate(state.documents)
        ]
        data = {
            "recordingStorageInfo": {"recordingChunks": chunks},
            "recordingStartTime": format_rfc3339(state.started_at),
            "recordingDurationMs": state.duration_ms,
            "recordingContentType": "AudioVideo" if state.content == Content.AUDIO_VIDEO else "Audio",
            "recordingChannelType": state.channel.capitalize(),
            "recordingFormatType": state.format.capitalize(),
            "sessionEndReason": state.end_reason,
        }
        subject = f"room/{state.room_id}/call/{state.call_id}/recording/{state.id}"
        return Event(EventType.RECORDING_FILE_STATUS_UPDATED, subject, state.call_id, data)

    # -- the call host's life -------------------------------------------------------------------

    async def recover(self) -> int:
        """Finish the recordings of a call host that stopped while making them.

        In a store the nodes of a cluster share, a recording whose call is still open is left
        alone: another node makes it, or the node that adopts the call goes on with it (``adopt``).
        """
        async with self.calls.database.read() as conn:
            open_calls = await calls_repository.open_call_ids(conn)
        unfinished = [state for state in self.store.unfinished() if state.call_id not in open_calls]
        for state in unfinished:
            self._take_over(state)
            if state.end_reason == "EncodingFailed":
                state.end_reason = None  # tried again: a success ends it as a restart
            state.phase = Phase.STOPPED
            state.end_reason = state.end_reason or "ServerRestarted"
            self._tasks.spawn(self.finish(state, recovered=True))
        return len(unfinished)

    async def adopt(self, call: Call) -> None:
        """A call adopted from a lost node: its recording goes on here, in a new segment (the lost
        node's segment ends at its last write), so the final document has both parts."""
        for state in self.store.unfinished():
            if state.call_id != call.id or state.phase not in (Phase.ACTIVE, Phase.PAUSED):
                continue
            self._take_over(state)
            session = RecordingSession(state, call, self.store.folder(state.id), lambda: self.calls.plane, self._ended)
            call.recorder = session
            self.sessions[state.id] = session
            await self._hear_transcript(session)
            async with session.lock:
                if state.phase == Phase.ACTIVE:
                    await session.begin_segment()
                self.store.save(state)
            log.warning("recording %s of call %s goes on on this node", state.id[:12], call.id)

    def _take_over(self, state: RecordingState) -> None:
        """A recording a stopped call host left: its files closed, its callbacks written from here."""
        folder = self.store.folder(state.id)
        for part in folder.glob(f"*.{RECORDING_PART}"):  # Janus died with them open
            part.rename(part.with_suffix(""))
        if state.segments and state.segments[-1].ended_at is None:
            state.segments[-1].ended_at = _last_write(folder, state.segments[-1].started_at)
        if state.callback_subscription is not None:
            self._writers[state.id] = callbacks.CallbackWriter(
                self.calls.database, state.callback_subscription, self._retry_seconds, self.calls.events_written
            )

    async def shutdown(self) -> None:
        """After the calls ended (which stopped their recordings): let the documents be made."""
        await self._tasks.wait(30)


async def _video_document(state: RecordingState, folder: Path, mix: list[encode.Piece]) -> Document:
    """The mix as sound, every camera and screen recorded where and when it was live."""
    audio = folder / f"mix{encode.DECODED}.wav"
    await encode.assemble(mix, audio, "wav")
    name = f"document-0.{state.format}"
    await encode.compose(audio, await _video_pieces(state, folder), state.duration_ms, folder / name)
    return Document(f"{state.id}-0", name, None, state.duration_ms)


async def _video_pieces(state: RecordingState, folder: Path) -> list[encode.VideoPiece]:
    """Each feed's file of each segment, decoded, placed on the document's timeline and canvas."""
    shots, elapsed = [], 0
    for segment in state.segments:
        for key, source in state.feeds.items():
            for mjr in feed_files(folder, segment.index, key):
                info = encode.mjr_header(mjr)
                if info is None:
                    continue  # no picture ever arrived
                offset = max(0, (int(info["u"]) - segment.started_at) // 1000)
                length = min(encode.mjr_length_ms(mjr), segment.duration_ms - offset)
                path = await encode.decode_video(mjr)
                shots.append(encode.Shot(key, source == MediaSource.SCREEN, path, elapsed + offset, length))
        elapsed += segment.duration_ms
    return encode.arrange(shots)


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


async def _leg_piece(mjr: Path, segment: Segment) -> encode.Piece:
    """One participant's audio in one segment, placed where its first packet came (silence if none)."""
    info = encode.mjr_header(mjr) if mjr.exists() else None
    if info is None:
        return encode.Piece(None, 0, segment.duration_ms)
    decoded = await encode.decode_mjr(mjr, info)
    offset = max(0, (int(info["u"]) - segment.started_at) // 1000)
    return replace(decoded, offset_ms=offset, duration_ms=segment.duration_ms)


async def _closed_by_janus(folder: Path) -> None:
    """Wait until Janus has closed (renamed) every file of the recording, within reason."""
    deadline = asyncio.get_running_loop().time() + _CLOSE_WAIT_SECONDS
    while any(folder.glob(f"*.{RECORDING_PART}")):
        if asyncio.get_running_loop().time() > deadline:
            for part in folder.glob(f"*.{RECORDING_PART}"):
                part.rename(part.with_suffix(""))
            return
        await asyncio.sleep(0.05)


def _last_write(folder: Path, fallback: int) -> int:
    times = [int(p.stat().st_mtime * 1_000_000) for p in folder.iterdir() if p.name != "state.json"]
    return max([fallback, *times])


def _transcript_key(state: RecordingState) -> str:
    return f"recording {state.id}"
