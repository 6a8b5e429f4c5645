"""Headless Chromium with a fake camera playing a real face video: patient page streams, the
clinician page shows live values. Driven by Playwright with the system Chromium (Debian package)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from test_server_support import ProcessServer, create_session, has_non_loopback_interface

from stream.report import charts
from stream.report.palette import load_palette

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def write_y4m(source: Path, target: Path, n_frames: int = 120, every: int = 2) -> Path:
    """A y4m clip for Chromium's fake camera (raw, so written at test time): every 2nd source frame."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w", format="yuv4mpegpipe") as out:
        stream = inp.streams.video[0]
        video = out.add_stream("rawvideo", rate=30)
        video.width, video.height, video.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
        written = 0
        for i, frame in enumerate(inp.decode(video=0)):
            if i % every:
                continue
            frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
            for packet in video.encode(frame):
                out.mux(packet)
            written += 1
            if written >= n_frames:
                break
        for packet in video.encode():
            out.mux(packet)
    return target


@pytest.fixture
def browser_env(tmp_path, shared_data):
    if not CHROMIUM.exists():
        pytest.skip("system Chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    if not has_non_loopback_interface():
        pytest.skip("no non-loopback network interface: Chromium and aiortc cannot pair ICE over lo alone")
    pytest.importorskip("playwright.sync_api")
    server = ProcessServer(tmp_path / "sessions.sqlite3", tmp_path / "serve.log").start()
    yield server, write_y4m(shared_data / "d9.mp4", tmp_path / "face.y4m"), tmp_path
    server.stop()


def test_patient_page_streams_and_clinician_page_shows_live_values(browser_env):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # expect()'s 5 s default is short for a page on a busy machine
    server, clip, tmp = browser_env
    session = create_session(server.url, "browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={clip.resolve()}",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            clinician = browser.new_page(viewport={"width": 1400, "height": 1100})
            clinician.goto(session["clinician_url"])  # before the patient: nothing measured, no zeros
            expect(clinician.locator("#status")).to_have_text("waiting for the patient", timeout=30_000)
            expect(clinician.locator("#latest tbody")).to_have_text("not measured yet")
            expect(clinician.locator("#regions tbody")).to_have_text("not measured yet")
            expect(clinician.locator("#paper-regions tbody")).to_have_text("not measured yet")

            patient = browser.new_page(viewport={"width": 1200, "height": 800})
            patient.goto(session["patient_url"])
            expect(patient.locator("#protocol li")).to_have_count(7)
            patient.click("#connect")
            patient.wait_for_function("window.pc && window.pc.connectionState === 'connected'", timeout=60_000)
            expect(patient.locator("#status")).to_have_text("live")
            assert "mirrored" in patient.get_attribute("#preview", "class")  # preview only
            patient.click("#start")
            expect(patient.locator("#protocol li.current")).to_have_text("Rest (8 s)")

            expect(clinician.locator("#status")).to_have_text("live", timeout=30_000)
            clinician.wait_for_function(
                "Number(document.getElementById('health-keyframes').textContent) >= 3", timeout=90_000
            )
            values = clinician.locator("#latest td.bar-cell").all_inner_texts()
            assert len(values) == 24 and all(0 <= float(v) <= 5 for v in values)
            # frames are arriving (the rate shows once its samples span half a second); how many a second
            # depends on how fast this machine encodes (test_server_faults checks what the rate counts)
            clinician.wait_for_function("Number(document.getElementById('health-fps').textContent) > 0", timeout=30_000)
            # every region carries a verdict in words, with its evidence (not bare differences)
            expect(clinician.locator("#regions tbody tr")).to_have_count(3, timeout=30_000)
            verdicts = ("side weaker", "no clear difference", "did not move", "not enough keyframes")
            for text in clinician.locator("#regions td.verdict strong").all_inner_texts():
                assert any(text.endswith(v) for v in verdicts), text
            assert len(clinician.locator("#regions td.verdict strong").all_inner_texts()) == 3
            assert all(" of " in t for t in clinician.locator("#regions tbody td:nth-child(4)").all_inner_texts())
            expect(clinician.locator("#synkinesis li").first).not_to_have_text("not measured yet")
            expect(clinician.locator("#paper-regions tbody tr")).to_have_count(3)
            # the protocol's first exercise is listed (after its 8 s the page starts the next one: on a busy
            # machine the test may get here later than that)
            expect(clinician.locator("#exercises tbody tr").first).to_have_attribute("data-exercise", "rest")
            # AU curves: one small chart per chosen AU, the patient's left and right in the palette's two colours
            au_charts = clinician.locator("#curves figure.au-chart")
            assert au_charts.count() == 4 and clinician.locator("#curves .u-wrap canvas").count() == 4
            sides = clinician.evaluate("""() => { const s = getComputedStyle(document.documentElement);
                return [s.getPropertyValue('--left').trim(), s.getPropertyValue('--right').trim()]; }""")
            palette = load_palette()
            assert [c.upper() for c in sides] == [palette.left, palette.right]  # the report's colours
            expect(clinician.locator(".scale-legend .scale-bar")).to_be_visible()  # the heatmaps' scale
            for value in (-0.7, 0.0, 0.45):  # the heatmaps' colours are the report's (stream/report/charts.py)
                drawn = clinician.evaluate(f"Palette.diverging({value})")
                expected = charts.hex_rgb(
                    charts.diverging(value, palette.scale_negative, palette.scale_neutral, palette.scale_positive)
                )
                assert drawn == "rgb({},{},{})".format(*expected)
            patient.screenshot(path=str(tmp / "patient.png"))
            clinician.screenshot(path=str(tmp / "clinician.png"), full_page=True)
            patient.click("#disconnect")
            expect(clinician.locator("#status")).to_have_text("ended (read-only)", timeout=60_000)
            # opened again, the page draws the whole stored series, not only the snapshots' latest keyframes
            stored = httpx.get(
                f"{server.url}/api/s/{session['session_id']}/au_series.csv",
                params={"token": session["clinician_token"]},
            ).text
            n_stored = len(stored.strip().splitlines()) - 1
            assert n_stored >= 3
            clinician.reload()
            expect(clinician.locator("#curves")).to_have_attribute("data-stored", str(n_stored), timeout=30_000)
        finally:
            browser.close()
    shots = Path(__file__).resolve().parents[1] / ".screenshots"
    if shots.is_dir():  # keep them when a developer asks for it (mkdir .screenshots)
        for name in ("patient.png", "clinician.png"):
            shutil.copy(tmp / name, shots / name)
