"""The live server: WebRTC ingest, sessions and tokens, dashboards over WebSocket, SQLite store.

Read in the order a keyframe travels: ``ingest`` (peer, latest-frame pump, keyframe queue) ->
``live`` (one session: connection, exercises) -> ``loops`` (frame and analysis loops running the
core's ``stream.session.AnalysisSession`` in the ``models`` executor) -> ``recorder`` (SQLite) ->
``snapshot`` (publisher; ``health``, ``latency``) -> ``hub`` (per-client bounded queues) -> ``app``
(routes, access checks via ``sessions``); ``registry`` holds the sessions in memory, ``store`` the data.
"""

from stream.server.app import create_app
from stream.server.settings import IceServer, ServerSettings

__all__ = ["IceServer", "ServerSettings", "create_app"]
