"""The vrooms calling SDK for Python (aiortc): join room calls from code, tests and bots."""

from vrooms.client.call import Call, CallState
from vrooms.client.client import CallClient, IncomingCall
from vrooms.client.media import AudioSink, PatternSource, ToneSource, VideoSink
from vrooms.client.signaling import CallError

__all__ = [
    "AudioSink",
    "Call",
    "CallClient",
    "CallError",
    "CallState",
    "IncomingCall",
    "PatternSource",
    "ToneSource",
    "VideoSink",
]
