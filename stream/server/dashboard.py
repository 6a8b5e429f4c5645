"""The clinician dashboard's WebSocket (``WS /ws/s/{sid}``, clinician token): the session's snapshots
as they are published, from this process or, with ``--redis``, from whichever node holds the session.

A client whose socket accepts nothing for ``send_timeout_s`` is dropped, not waited for; the
clinician link's lifetime (``--link-ttl``) ends an open dashboard too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from stream.server.node import Node
from stream.server.sessions import AccessDenied, Gate, Role, token_from
from stream.server.settings import ServerSettings
from stream.server.web import error


def dashboard_routes(settings: ServerSettings, gate: Gate, node: Node) -> list[BaseRoute]:
    async def dashboard(ws: WebSocket) -> None:
        sid = ws.path_params["sid"]
        try:
            gate.check(ws, sid, Role.CLINICIAN)
        except AccessDenied as denied:
            await _refuse(ws, denied.status)
            return
        expires_at = gate.expires_at(sid, token_from(ws) or "")
        # The session's snapshots: from this process, or with --redis from whichever node holds it.
        watching = node.watch(sid)
        sub = await watching.__aenter__()
        await ws.accept()

        async def send_loop() -> None:
            while True:
                message = await sub.queue.get()
                # A client whose socket accepts nothing for send_timeout_s is dropped, not waited for.
                await asyncio.wait_for(ws.send_text(message), settings.send_timeout_s)
                sub.sent += 1

        async def receive_loop() -> None:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return

        tasks = [asyncio.ensure_future(send_loop()), asyncio.ensure_future(receive_loop())]
        if expires_at is not None:  # the link's lifetime ends an open dashboard too (1008, as a refusal)
            tasks.append(asyncio.ensure_future(asyncio.sleep(max(0.0, expires_at - time.time()))))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ws.close(code=1008 if expires_at is not None and time.time() >= expires_at else 1000)
            await watching.__aexit__(None, None, None)

    return [WebSocketRoute("/ws/s/{sid}", dashboard)]


async def _refuse(ws: WebSocket, status: int) -> None:
    """Refuse a WebSocket handshake with a bare HTTP status where the server supports it."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error(status))
    else:
        await ws.close(code=1008)
