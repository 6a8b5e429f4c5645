"""The live server: WebRTC ingest, sessions and tokens, dashboards over WebSocket, SQLite store.

Read in the order a frame travels: ``ingest`` (peer, latest-frame pump, keyframe queue) ->
``worker`` (pipeline off the event loop, statistics per exercise, persistence) -> ``hub``
(per-client bounded queues) -> ``app`` (routes, access checks via ``sessions``), ``store``.
"""

from stream.server.app import create_app
from stream.server.settings import IceServer, ServerSettings

__all__ = ["IceServer", "ServerSettings", "create_app"]
