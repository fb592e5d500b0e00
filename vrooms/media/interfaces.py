"""Which network interfaces Janus should gather ICE candidates on.

Janus ignores loopback, so a machine needs at least one interface that is up, is not
loopback and has an IPv4 address. We read that from the kernel (SIOCGIFFLAGS /
SIOCGIFADDR) instead of guessing names such as ``eth0``.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8


def _ioctl(sock: socket.socket, request: int, name: str) -> bytes | None:
    try:
        return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None


def ice_interfaces() -> list[tuple[str, str]]:
    """(name, IPv4 address) of every interface that is up, not loopback and addressed."""
    found: list[tuple[str, str]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            flags_raw = _ioctl(sock, _SIOCGIFFLAGS, name)
            if flags_raw is None:
                continue
            flags = struct.unpack("H", flags_raw[16:18])[0]
            if not flags & _IFF_UP or flags & _IFF_LOOPBACK:
                continue
            addr_raw = _ioctl(sock, _SIOCGIFADDR, name)
            if addr_raw is not None:
                found.append((name, socket.inet_ntoa(addr_raw[20:24])))
    return found


def public_address(configured: str | None) -> str | None:
    """The address clients reach this machine's media at: the one configured (behind a NAT), else
    an interface's own address if it is public (routed on the Internet), else None (a LAN, or a
    NAT the machine cannot see: say it with ``--public-ip``)."""
    if configured:
        return configured
    for _, address in ice_interfaces():
        if ipaddress.ip_address(address).is_global:
            return address
    return None
