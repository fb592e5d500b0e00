"""The little SDP surgery the call host does on client offers (RFC 8866, RFC 3264 section 6)."""

from __future__ import annotations


def only_receive(offer_sdp: str) -> str:
    """The offer with every media section receive-only (``a=sendonly`` becomes ``a=inactive``).

    Used for participants whose role may not send: Janus then answers without
    accepting any media from them, whatever their client put in the offer.
    """
    lines = []
    for line in offer_sdp.splitlines():
        if line in ("a=sendrecv", "a=recvonly"):
            line = "a=recvonly"
        elif line in ("a=sendonly", "a=inactive"):
            line = "a=inactive"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"
