"""Patients over weeks (issue 12), end to end on real clips.

Two recordings of the same real face (an excerpt of d9.mp4 with the patient's right side damped to
15 %, then to 60 % of its motion: stream/validate/construct/) are analysed by the real command
``python -m stream analyze --patient --db`` into one SQLite store. The patient's history then shows
the improvement, the real ``serve`` process answers the patient API, the history link and the
exports (FHIR checked with the structural validator of test_grading), and headless Chromium renders
the history page and prints it to one PDF page. A third, live session with exercise segments (stored
as the live server stores them) is graded per movement beside them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_grading import check_fhir_bundle
from test_server_support import ADMIN_KEY, REPO, ProcessServer

CODE = "P-0042"
# d9's smiles, with the neutral face before them: the mouth moves in several separate movements, and
# in enough keyframes with the eyes still for a verdict (10 s; the 6 s of the smiles alone gave
# fewer than 10 once the head pose was taken out, because a damped side no longer adds turns' movement)
EXCERPT_S = (2.0, 12.0)
CHROMIUM = Path("/usr/bin/chromium")
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def damped_excerpt(clip: Path, factor: float, out: Path) -> Path:
    """The excerpt with the patient's right side keeping ``factor`` of its motion, as an mp4 (crf 18)."""
    from stream.config import AnalysisConfig
    from stream.decode import VideoFile
    from stream.face.detect import build_detector
    from stream.face.mesh import FaceMesh
    from stream.face.track import TrackingDetector
    from stream.types import Frame
    from stream.validate.construct import CaseSpec, Constructor
    from stream.validate.run import _reencode

    config = AnalysisConfig()
    tracker = TrackingDetector(build_detector(config.detector), detect_every=config.detect_every)
    with VideoFile(clip) as video:
        fps = video.info.fps or 30.0
        frames = [f for f in video.frames() if EXCERPT_S[0] <= f.time_s < EXCERPT_S[1]]
    constructor = Constructor(CaseSpec("damp", "right", "face", factor), fps=fps, n_frames=len(frames), mesh=FaceMesh())

    def changed():
        for i, frame in enumerate(frames):
            face = tracker.detect(frame.image).face
            landmarks = None if face is None else np.asarray(face.landmarks, float)
            yield Frame(i, i / fps, constructor.frame(i, frame.image, landmarks))

    _reencode(changed(), fps, 18, 1.0, out)
    return out


def run_analyze(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m stream analyze ARGS`` in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "stream", "analyze", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def patient_db(tmp_path_factory, shared_data) -> Path:
    """One store with two recorded sessions of patient P-0042: strongly damped, then less damped."""
    tmp = tmp_path_factory.mktemp("patients")
    db = tmp / "sessions.sqlite3"
    for factor in (0.15, 0.6):
        clip = damped_excerpt(shared_data / "d9.mp4", factor, tmp / f"damp{factor}.mp4")
        run = run_analyze(
            clip, "--out", tmp / f"out{factor}", "--patient", CODE, "--db", db, "--label", f"damp {factor}", timeout=600
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"of patient {CODE}" in run.stdout
    return db


def test_store_keeps_patients_links_sessions_and_grades(tmp_path) -> None:
    """The patient tables on a real SQLite file: codes unique, sessions attached in time order,
    link hashes with their issue time, grades kept per session; an older database gains the tables."""
    import sqlite3

    from stream.server.patients import PatientCodeError, check_code
    from stream.server.store import Store

    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as db:  # a database from before patients existed: sessions only
        db.execute(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, label TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,"
            " status TEXT NOT NULL, ended_at REAL, mirrored INTEGER NOT NULL DEFAULT 0,"
            " config_json TEXT NOT NULL DEFAULT '{}', estimator_json TEXT NOT NULL DEFAULT '{}',"
            " counts_json TEXT NOT NULL DEFAULT '{}')"
        )
        db.execute("INSERT INTO sessions (id, created_at, status) VALUES ('s-old', 1.0, 'ended')")
    store = Store(old)
    try:
        assert store.create_patient("P-1", "ward 3") and not store.create_patient("P-1", "other")
        assert store.patient("P-1").label == "ward 3" and store.patient("P-2") is None
        store.create_session("s-new", "", False, {})
        store.attach_session("s-new", "P-1", "live")
        store.attach_session("s-old", "P-1", "recorded")
        assert [(r.id, kind) for r, kind in store.patient_sessions("P-1")] == [("s-old", "recorded"), ("s-new", "live")]
        assert store.session_patient("s-new") == ("P-1", "live") and store.session_patient("nope") is None
        listed = store.patients()
        assert [(p.code, p.n_sessions) for p in listed] == [("P-1", 2)] and listed[0].last_session_at > 1.0
        issued = store.add_patient_token("P-1", "ab" * 32)
        assert store.patient_tokens("P-1") == [("ab" * 32, issued)] and store.patient_tokens("P-2") == []
        assert store.grades("s-new") is None
        store.save_grades("s-new", 3, "live", {"basis": "exercises"})
        store.save_grades("s-new", 5, "ended", {"basis": "whole_recording"})
        assert store.grades("s-new") == (5, "ended", {"basis": "whole_recording"})
    finally:
        store.close()
    for bad in ("", "Jane Doe", "-x", "x" * 65, "P_1", "Müller"):
        with pytest.raises(PatientCodeError):
            check_code(bad)
    assert check_code(" P-0042.a ") == "P-0042.a"


def test_analyze_refuses_a_bad_patient_code_before_decoding(tmp_path, shared_data) -> None:
    run = run_analyze(
        shared_data / "d9.mp4", "--out", tmp_path / "o", "--patient", "Jane Doe", "--db", tmp_path / "db.sqlite3"
    )
    assert run.returncode == 2 and "never a name" in run.stderr
    assert not (tmp_path / "o").exists()  # refused before any output
    run = run_analyze(shared_data / "d9.mp4", "--out", tmp_path / "o", "--patient", CODE)
    assert run.returncode == 2 and "--db" in run.stderr


@pytest.mark.slow  # patient_db analyses two recordings in `analyze` processes
def test_two_recordings_give_a_trend_that_shows_the_improvement(patient_db) -> None:
    from stream.server.patients import history
    from stream.server.store import Store

    store = Store(patient_db)
    try:
        data = history(store, CODE)
        # numbers only: the stored sessions hold an AU series, no frame and no video file name
        assert all("damp" not in json.dumps(r.config) for r, _ in store.patient_sessions(CODE))
    finally:
        store.close()
    sessions = data["sessions"]
    assert [s["kind"] for s in sessions] == ["recorded", "recorded"]
    assert [s["label"] for s in sessions] == ["damp 0.15", "damp 0.6"]
    first, second = (s["grades"] for s in sessions)
    assert first["basis"] == second["basis"] == "whole_recording"
    mouth1, mouth2 = first["regions"]["mouth"], second["regions"]["mouth"]
    # strongly damped: the right side is named weaker, far below the healthy range, and graded low
    assert mouth1["status"] == "weaker_side" and mouth1["weaker_side"] == "right"
    assert mouth1["weaker_percent"] < 30
    grade1 = next(m for m in first["movements"] if m["key"] == "region:mouth")["voluntary"]
    grade2 = next(m for m in second["movements"] if m["key"] == "region:mouth")["voluntary"]
    assert grade1["value"] is not None and grade1["value"] <= 3 and "right side weaker" in grade1["reason"]
    # less damped: more movement on the weak side, a better grade
    assert mouth2["weaker_percent"] > mouth1["weaker_percent"] + 15
    assert mouth2["weaker_side"] in (None, "right")  # still the right if anything, never the left
    assert grade2["value"] > grade1["value"]
    changes = {c["key"]: c for c in data["changes"]}
    assert changes["region:mouth.voluntary"]["since_previous"] == grade2["value"] - grade1["value"] > 0
    assert changes["region:mouth.weaker_percent"]["since_first"] > 15
    assert first["composite"]["value"] is None and "whole recording" in first["composite"]["reason"]


def add_live_session(db: Path, recording: int, sid: str) -> None:
    """A live session of the patient from a recording's stored numbers, its keyframes in exercise
    segments (rest for the first six keyframes, then smile), as the live server stores them."""
    from stream.server.store import Store
    from stream.session.exercises import Segment

    store = Store(db)
    try:
        recorded = store.patient_sessions(CODE)[recording][0]
        stored = store.series(recorded.id).series
        store.create_session(sid, "week 3", False, recorded.config)
        store.attach_session(sid, CODE, "live")
        store.set_estimator(sid, recorded.estimator)
        store.set_counts(sid, recorded.counts)
        rest_end = float(stored.time_s[5])
        store.start_segment(sid, Segment(0, "rest", 0.0, rest_end))
        store.start_segment(sid, Segment(1, "smile", rest_end, float(stored.time_s[-1]) + 1.0))
        for i in range(len(stored)):
            store.add_keyframe(
                sid,
                i,
                int(stored.frames[i]),
                float(stored.time_s[i]),
                0.0,
                0 if stored.time_s[i] < rest_end else 1,
                0,
                stored.left[i],
                stored.right[i],
                stored.closure[i],
                stored.movement[i],
            )
        store.set_status(sid, "ended")
    finally:
        store.close()


@pytest.mark.slow  # patient_db analyses two recordings in `analyze` processes
def test_a_live_session_with_exercises_is_graded_per_movement(patient_db, tmp_path) -> None:
    """A live session of the patient whose keyframes carry exercise segments is graded per movement
    from its segments' findings, beside the recorded sessions."""
    from stream.server.patients import history
    from stream.server.store import Store

    db = tmp_path / "sessions.sqlite3"
    shutil.copy(patient_db, db)
    add_live_session(db, 0, "live-1")  # the strongly damped recording's numbers
    store = Store(db)
    try:
        data = history(store, CODE)
    finally:
        store.close()
    live = data["sessions"][-1]
    assert live["kind"] == "live" and live["grades"]["basis"] == "exercises"
    moves = {m["key"]: m for m in live["grades"]["movements"]}
    smile = moves["smile"]["voluntary"]
    assert smile["basis"] == "exercise segment 1" and smile["value"] is not None and smile["value"] <= 3
    assert moves["smile"]["weaker_side"] == "right"
    assert (
        moves["brow_raise"]["voluntary"]["value"] is None
        and "not recorded" in moves["brow_raise"]["voluntary"]["reason"]
    )
    assert live["grades"]["resting"]["value"] is None and "first frame" in live["grades"]["resting"]["reason"]
    assert live["grades"]["composite"]["value"] is None
    assert not any("still image" in w for w in live["grades"]["warnings"])


@pytest.fixture(scope="module")
def server(patient_db, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    db = tmp / "sessions.sqlite3"
    shutil.copy(patient_db, db)
    add_live_session(db, 1, "live-2")  # a third session, live with exercises (the less damped numbers)
    proc = ProcessServer(db, tmp / "serve.log").start()
    yield proc
    proc.stop()
    log = (tmp / "serve.log").read_text()
    assert ADMIN_KEY not in log and "token=" not in log.replace("token=<redacted>", "")


@pytest.mark.slow  # patient_db analyses two recordings in `analyze` processes
def test_patient_api_links_and_exports(server) -> None:
    url = server.url
    # patients: create, duplicates and names refused, listed
    r = httpx.post(url + "/api/patients", json={"code": "P-0043", "label": "ward 3"}, headers=AUTH)
    assert r.status_code == 201 and r.json()["history_url"].startswith(f"{url}/p/P-0043/history?token=")
    other_token = r.json()["history_token"]
    assert httpx.post(url + "/api/patients", json={"code": "P-0043"}, headers=AUTH).status_code == 409
    assert httpx.post(url + "/api/patients", json={"code": "Jane Doe"}, headers=AUTH).status_code == 422
    assert httpx.post(url + "/api/patients", json={"code": "P-9"}).status_code == 401
    listed = {p["code"]: p for p in httpx.get(url + "/api/patients", headers=AUTH).json()["patients"]}
    assert listed[CODE]["n_sessions"] == 3 and listed["P-0043"]["label"] == "ward 3"
    # a live session attached to a patient at creation; an unknown code is refused
    r = httpx.post(url + "/api/sessions", json={"label": "week 3", "patient": "P-0043"}, headers=AUTH)
    assert r.status_code == 201 and r.json()["patient"] == "P-0043"
    assert httpx.post(url + "/api/sessions", json={"patient": "P-0099"}, headers=AUTH).status_code == 422
    # the per-patient clinician link opens that patient's history only
    link = httpx.post(url + f"/api/patients/{CODE}/link", headers=AUTH).json()
    token = link["history_token"]
    assert httpx.get(link["history_url"]).status_code == 200
    assert httpx.get(url + f"/p/{CODE}/history?token={other_token}").status_code == 403
    assert httpx.get(url + f"/api/p/{CODE}/history").status_code == 401
    assert httpx.get(url + f"/api/p/{CODE}/history?token={token}x").status_code == 403
    assert httpx.get(url + f"/api/p/P-0043/history?token={token}").status_code == 403
    data = httpx.get(url + f"/api/p/{CODE}/history?token={token}").json()
    assert len(data["sessions"]) == 3 and data["label"] == "estimate, not a clinical grade"
    attached = httpx.get(url + f"/api/p/P-0043/history?token={other_token}").json()
    assert [s["label"] for s in attached["sessions"]] == ["week 3"] and attached["sessions"][0]["grades"] is None
    # exports: JSON, CSV, FHIR R4 Bundle of Observations; per patient and per session
    as_json = httpx.get(url + f"/api/p/{CODE}/export.json?token={token}").json()
    assert as_json["patient"] == CODE and len(as_json["sessions"]) == 3
    rows = list(csv.DictReader(io.StringIO(httpx.get(url + f"/api/p/{CODE}/export.csv?token={token}").text)))
    mouth = [r for r in rows if r["key"] == "region:mouth.weaker_percent"]
    assert len(mouth) == 3 and float(mouth[1]["value"]) > float(mouth[0]["value"])
    assert {r["basis"] for r in rows} == {"whole_recording", "exercises"}
    r = httpx.get(url + f"/api/p/{CODE}/export.fhir.json?token={token}")
    assert r.headers["content-type"].startswith("application/fhir+json")
    resources = check_fhir_bundle(r.json())
    assert len(resources) == len(rows)
    assert {o["subject"]["reference"] for o in resources} == {f"Patient/{CODE}"}
    times = {x["session_id"]: x["time"] for x in as_json["sessions"]}  # each Observation has its session's time
    assert all(o["effectiveDateTime"] == times[o["identifier"][0]["value"].split("/")[0]] for o in resources)
    sid = data["sessions"][1]["session_id"]
    one = check_fhir_bundle(httpx.get(url + f"/api/p/{CODE}/s/{sid}/export.fhir.json?token={token}").json())
    assert len(one) == sum(r["session_id"] == sid for r in rows) and {
        o["identifier"][0]["value"].split("/")[0] for o in one
    } == {sid}
    assert httpx.get(url + f"/api/p/{CODE}/s/nope/export.json?token={token}").status_code == 404
    assert httpx.get(url + f"/api/p/{CODE}/export.xml?token={token}").status_code == 404


@pytest.mark.browser
def test_history_page_renders_and_prints_on_one_page(server, tmp_path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("system Chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # expect()'s 5 s default is short for a page on a busy machine
    link = httpx.post(server.url + f"/api/patients/{CODE}/link", headers=AUTH).json()["history_url"]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--disable-background-networking", "--disable-component-update", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(link)
            page.wait_for_selector("body[data-loaded='1']", timeout=60_000)
            expect(page.locator("#patient-code")).to_have_text(CODE)
            row = page.locator("#summary tr[data-key='region:mouth.weaker_percent']")
            expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^\+\d"))  # since the first: an improvement
            expect(page.locator("#summary tr[data-key='smile.voluntary'] td").nth(1)).to_have_text(
                re.compile(r"^[1-5]$")
            )
            # SVG trends: one point per session and region with a figure, in the weaker side's colour
            assert page.locator("#plot-regions svg circle.point-right").count() >= 1
            assert page.locator("#plot-scores svg polyline").count() >= 1
            right = page.evaluate("getComputedStyle(document.querySelector('#plot-regions circle.point-right')).fill")
            side = page.evaluate("getComputedStyle(document.querySelector('.right')).color")
            assert right == side  # the dashboard's side colour
            expect(page.locator("#sessions tbody tr")).to_have_count(3)
            expect(page.locator("#evidence details")).to_have_count(3)
            assert "estimate, not a clinical grade" in page.locator("#estimate-note").inner_text()
            pdf = page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF") and _pdf_pages(pdf) == 1  # the printable summary is one page
            (tmp_path / "history.pdf").write_bytes(pdf)
            # the index page: create a patient, then a session of that patient, with the clinic key
            index = browser.new_page(viewport={"width": 1300, "height": 1000})
            index.goto(server.url + "/")
            index.fill("#admin-key", ADMIN_KEY)
            index.click("#load")
            expect(index.locator("#patients tbody")).to_contain_text(CODE)
            index.fill("#patient-code-new", "P-0050")
            index.click("#create-patient")
            expect(index.locator("#links")).to_contain_text("History of P-0050")
            expect(index.locator("#session-patient option[value='P-0050']")).to_have_count(1)
            index.select_option("#session-patient", "P-0050")
            index.fill("#label", "first visit")
            index.click("#create")
            expect(index.locator("#links")).to_contain_text("Patient link")
        finally:
            browser.close()
    listed = {p["code"]: p for p in httpx.get(server.url + "/api/patients", headers=AUTH).json()["patients"]}
    assert listed["P-0050"]["n_sessions"] == 1


def _pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


def test_history_links_expire_with_link_ttl_and_the_clinic_key_issues_new_ones(tmp_path) -> None:
    """``--link-ttl`` bounds a history link as it bounds a session's clinician link: 403 like a wrong token."""
    import sqlite3
    import time

    from test_server_support import ThreadServer, allow_loopback_ice

    from stream.server import ServerSettings, create_app

    allow_loopback_ice()
    db = str(tmp_path / "s.sqlite3")
    settings = ServerSettings(db_path=db, admin_key=ADMIN_KEY, max_failed_credentials=10_000, link_ttl_s=3600.0)
    with ThreadServer(create_app(settings)) as srv:
        created = httpx.post(srv.url + "/api/patients", json={"code": "P-7"}, headers=AUTH).json()
        assert created["history_expires_at"] == pytest.approx(time.time() + 3600.0, abs=60.0)
        token = created["history_token"]
        assert httpx.get(srv.url + "/api/p/P-7/history", params={"token": token}).status_code == 200
        with sqlite3.connect(db) as conn:  # issued an hour and a second ago (no waiting)
            conn.execute("UPDATE patient_tokens SET created_at = created_at - 3601 WHERE patient_code = 'P-7'")
        for path in ("/p/P-7/history", "/api/p/P-7/history", "/api/p/P-7/export.json"):
            r = httpx.get(srv.url + path, params={"token": token})
            assert (r.status_code, r.json()) == (403, {"error": "forbidden"}), path
        renewed = httpx.post(srv.url + "/api/patients/P-7/link", headers=AUTH).json()["history_token"]
        assert httpx.get(srv.url + "/api/p/P-7/history", params={"token": renewed}).status_code == 200
        assert httpx.get(srv.url + "/api/p/P-7/history", headers=AUTH).status_code == 200  # the clinic key
        assert httpx.get(srv.url + "/api/p/P-8/history", headers=AUTH).status_code == 404
