"""Access checks, hostile requests and slow viewers against a real uvicorn (in a thread)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
import websockets
from test_server_support import ADMIN_KEY, ThreadServer, allow_loopback_ice, create_session, ws_url

from stream.server import ServerSettings, create_app


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    allow_loopback_ice()
    # every refusal below comes from 127.0.0.1: no rate limit in this module (see test_server_faults.py)
    settings = ServerSettings(
        db_path=str(tmp_path_factory.mktemp("access") / "s.sqlite3"), admin_key=ADMIN_KEY, max_failed_credentials=10_000
    )
    with ThreadServer(create_app(settings)) as srv:
        yield srv


@pytest.fixture(scope="module")
def two_sessions(server):
    return create_session(server.url, "A"), create_session(server.url, "B")


def ws_status(url: str) -> int | None:
    """HTTP status of a refused WebSocket handshake; None when it was accepted."""

    async def go() -> int | None:
        try:
            async with websockets.connect(url):
                return None
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(go())


def test_pages_api_and_websockets_refuse_wrong_tokens(server, two_sessions):
    a, b = two_sessions
    sid_a = a["session_id"]
    cases = {  # (token, expected status) per route kind
        "missing": (None, 401),
        "wrong": ("not-a-token", 403),
        "patient on dashboard": (a["patient_token"], 403),
        "session B's clinician": (b["clinician_token"], 403),
    }
    for name, (token, status) in cases.items():
        params = {} if token is None else {"token": token}
        for path in (f"/s/{sid_a}/clinician", f"/api/s/{sid_a}/state", f"/api/s/{sid_a}/report.json"):
            r = httpx.get(server.url + path, params=params)
            assert r.status_code == status, (name, path)
            assert r.json() == {"error": "unauthorized" if status == 401 else "forbidden"}  # no detail leaked
            assert a["patient_token"] not in r.text and a["clinician_token"] not in r.text
        ws = ws_url(server.url, a, token="" if token is None else token)
        assert ws_status(ws) == status, name

    # the patient side: a clinician token or session B's patient token cannot stream into A
    for token in (a["clinician_token"], b["patient_token"], "x"):
        assert httpx.get(f"{server.url}/s/{sid_a}/patient", params={"token": token}).status_code == 403
        r = httpx.post(
            f"{server.url}/api/s/{sid_a}/offer",
            json={"sdp": "v=0", "type": "offer"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 403
    # an unknown session answers exactly like a wrong token
    assert (
        httpx.get(f"{server.url}/s/nosuchsession/clinician", params={"token": a["clinician_token"]}).status_code == 403
    )
    # strangers cannot create or list sessions
    assert httpx.post(server.url + "/api/sessions").status_code == 401
    assert httpx.get(server.url + "/api/sessions", headers={"Authorization": "Bearer guess"}).status_code == 403
    # the right tokens work
    assert httpx.get(f"{server.url}/s/{sid_a}/clinician", params={"token": a["clinician_token"]}).status_code == 200
    assert httpx.get(f"{server.url}/s/{sid_a}/patient", params={"token": a["patient_token"]}).status_code == 200
    assert ws_status(ws_url(server.url, a)) is None


def offer_sdp(codecs: str = "default") -> str:
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

    async def go() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    sdp = asyncio.run(go())
    if codecs == "unsupported":  # rename every video codec to one the server cannot decode
        sdp = (
            sdp.replace("VP8/90000", "AV1X/90000")
            .replace("H264/90000", "AV1X/90000")
            .replace("rtx/90000", "AV1X/90000")
        )
    return sdp


def test_hostile_offers_get_clear_4xx_and_other_sessions_keep_working(server, two_sessions):
    a, b = two_sessions
    offer_url = f"{server.url}/api/s/{a['session_id']}/offer"
    auth = {"Authorization": f"Bearer {a['patient_token']}"}
    bad = [
        (b"{not json", 400),
        (json.dumps({"sdp": "hello", "type": "offer"}).encode(), 400),
        (json.dumps({"sdp": offer_sdp(), "type": "answer"}).encode(), 400),
        (
            json.dumps(
                {"sdp": "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nbroken", "type": "offer"}
            ).encode(),
            400,
        ),
        (json.dumps({"sdp": offer_sdp("unsupported"), "type": "offer"}).encode(), 422),
        (json.dumps({"sdp": "v=0\r\n" + "a=x\r\n" * 30000, "type": "offer"}).encode(), 413),
    ]
    for body, status in bad:
        r = httpx.post(offer_url, content=body, headers={**auth, "content-type": "application/json"}, timeout=60)
        assert r.status_code == status, (r.status_code, r.text, body[:60])
        assert set(r.json()) == {"error"}
    # a body far above the limit is refused from its Content-Length, unread
    r = httpx.post(f"{server.url}/api/s/{a['session_id']}/exercise", content=b"x" * (2 << 20), headers=auth)
    assert r.status_code == 413

    # session B still negotiates a real connection on the same server
    r = httpx.post(
        f"{server.url}/api/s/{b['session_id']}/offer",
        json={"sdp": offer_sdp(), "type": "offer"},
        headers={"Authorization": f"Bearer {b['patient_token']}"},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["type"] == "answer" and "m=video" in r.json()["sdp"]
    httpx.post(
        f"{server.url}/api/s/{b['session_id']}/hangup", headers={"Authorization": f"Bearer {b['patient_token']}"}
    )


def stalled_websocket(url: str) -> socket.socket:
    """A client that completes the WebSocket handshake and then never reads a byte."""
    host_port, path = url.removeprefix("ws://").split("/", 1)
    host, port = host_port.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert b"101" in sock.recv(4096).split(b"\r\n")[0]
    return sock


def test_a_stalled_viewer_does_not_delay_a_fast_one(server, two_sessions):
    """Three viewers that never read, and a fast one that is sent each update only after it got the
    previous one (lockstep, so a busy machine cannot make the fast viewer itself fall behind): if
    sending to the stalled sockets held up the hub, the lockstep would stop and the test time out."""
    a, _ = two_sessions
    sessions = server.app.state.sessions
    live = server.call(sessions.open, a["session_id"])
    stalled = [stalled_websocket(ws_url(server.url, a)) for _ in range(3)]
    # 100 updates of 200 kB (20 MB) fill any stalled socket: more than a kernel send buffer takes (Debian: 4 MB at
    # most, other systems up to 16 MB), so the stalled viewers must lose updates
    padding = "x" * 200_000
    n_updates, received = 100, []

    async def fast_viewer() -> None:
        async with websockets.connect(ws_url(server.url, a), max_size=None) as ws:
            await ws.recv()  # the current state
            ready.set()
            while len(received) < n_updates:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if "probe" in message:
                    received.append(message["probe"])
                    got.set()

    async def publisher() -> None:
        await ready.wait()
        for i in range(n_updates):
            got.clear()
            message = json.dumps({"probe": i, "padding": padding})
            server.loop.call_soon_threadsafe(live.hub.publish, message)
            await asyncio.wait_for(got.wait(), 60)

    async def run() -> None:
        await asyncio.gather(fast_viewer(), publisher())

    ready, got = asyncio.Event(), asyncio.Event()
    try:
        asyncio.run(run())
    finally:
        for sock in stalled:
            sock.close()
    assert received == list(range(n_updates))  # the fast viewer got every update, in order
    assert live.hub.dropped() > 0 or len(live.hub) < 4  # the stalled viewers lost updates (or were evicted)


def self_signed_certificate(directory) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(certfile), str(keyfile)


def test_https_with_certificate_options(tmp_path):
    certfile, keyfile = self_signed_certificate(tmp_path)
    with pytest.raises(ValueError, match="go together"):
        ServerSettings(certfile=certfile).validate()
    settings = ServerSettings(
        db_path=str(tmp_path / "s.sqlite3"), admin_key=ADMIN_KEY, certfile=certfile, keyfile=keyfile
    )
    assert settings.validate().scheme == "https"
    with ThreadServer(create_app(settings), certfile=certfile, keyfile=keyfile) as srv:
        r = httpx.post(srv.url + "/api/sessions", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, verify=False)
        assert r.status_code == 201 and r.json()["patient_url"].startswith("https://")


def age_tokens(db_path: str, session_id: str, seconds: float) -> None:
    """Make every token of a session ``seconds`` older, as if issued that long ago (no waiting)."""
    import sqlite3

    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE tokens SET created_at = created_at - ? WHERE session_id = ?", (seconds, session_id))


def expire_in(db_path: str, session_id: str, ttl_s: float, left_s: float) -> None:
    """Make every token of a session expire ``left_s`` from now (counted from now, not from when it
    was issued: the steps before may take seconds on a busy machine)."""
    import sqlite3

    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE tokens SET created_at = ? WHERE session_id = ?", (time.time() - ttl_s + left_s, session_id))


def test_clinician_links_expire_after_link_ttl_and_the_clinic_key_issues_new_ones(tmp_path):
    allow_loopback_ice()
    db = str(tmp_path / "s.sqlite3")
    settings = ServerSettings(db_path=db, admin_key=ADMIN_KEY, max_failed_credentials=10_000, link_ttl_s=3600.0)
    with ThreadServer(create_app(settings)) as srv:
        old, fresh = create_session(srv.url, "old"), create_session(srv.url, "fresh")
        sid = old["session_id"]
        age_tokens(db, sid, 3601.0)  # issued an hour and a second ago
        for path in (f"/s/{sid}/clinician", f"/api/s/{sid}/state", f"/api/s/{sid}/config", f"/api/s/{sid}/report.json"):
            r = httpx.get(srv.url + path, params={"token": old["clinician_token"]})
            assert (r.status_code, r.json()) == (403, {"error": "forbidden"}), path  # as a wrong token
        assert ws_status(ws_url(srv.url, old)) == 403
        # the patient link of the same age still works: it ends with its session instead
        assert httpx.get(f"{srv.url}/s/{sid}/patient", params={"token": old["patient_token"]}).status_code == 200
        # a link within its lifetime works; the clinic key issues a new one for the old session
        assert httpx.get(f"{srv.url}/api/s/{fresh['session_id']}/state", headers=clinician(fresh)).status_code == 200
        assert fresh["clinician_expires_at"] == pytest.approx(time.time() + 3600.0, abs=60.0)
        r = httpx.post(f"{srv.url}/api/sessions/{sid}/clinician-link", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 201
        renewed = {**old, "clinician_token": r.json()["clinician_token"]}
        assert (
            httpx.get(f"{srv.url}/s/{sid}/clinician", params={"token": renewed["clinician_token"]}).status_code == 200
        )
        assert ws_status(ws_url(srv.url, renewed)) is None

        # a dashboard open when its link's lifetime ends is closed (policy, 1008), not left streaming
        expire_in(db, fresh["session_id"], settings.link_ttl_s, 3.0)  # three seconds left from now

        async def open_dashboard() -> int | None:
            async with websockets.connect(ws_url(srv.url, fresh)) as ws:
                await ws.recv()  # the current state
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), 30)
                return ws.close_code

        assert asyncio.run(open_dashboard()) == 1008


def test_clinician_links_never_expire_by_default(server, two_sessions):
    a, _ = two_sessions
    age_tokens(server.app.state.settings.db_path, a["session_id"], 10 * 365 * 86400.0)
    assert httpx.get(f"{server.url}/api/s/{a['session_id']}/state", headers=clinician(a)).status_code == 200
    age_tokens(server.app.state.settings.db_path, a["session_id"], -10 * 365 * 86400.0)


def clinician(session: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['clinician_token']}"}
