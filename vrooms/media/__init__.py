"""The media plane: a Janus WebRTC server that vrooms starts, configures and drives.

Clients never talk to Janus's API; only the call host does (see ``vrooms.calls``).
"""
