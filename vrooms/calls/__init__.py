"""Room calls: admission, call and participant state, in-call operations, records.

The call host process runs this beside Janus; REST workers proxy the signaling
WebSocket to it and tell it about roster and room changes.
"""
