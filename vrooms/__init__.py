"""vrooms: self-hosted Virtual Rooms, wire-compatible with Azure Communication Services."""

__version__ = "0.1.0"
