"""The wheel carries what a non-editable install needs: every module, the web pages, the data files.

The pages live at the repository root (static/) and are mapped into the package as ``stream.static``;
a wheel without them installs a server that answers every page with 404.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _source_files(folder: Path, prefix: str) -> set[str]:
    return {
        f"{prefix}/{p.relative_to(folder).as_posix()}"
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    # Built from a copy of what the wheel is made of, so that setuptools' build/ folder is not shared
    # with another build running in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("stream", "static"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        cwd=source,
        capture_output=True,
    )
    (wheel,) = out.glob("stream_fp-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_wheel_holds_every_module(wheel_names: set[str]) -> None:
    modules = _source_files(ROOT / "stream", "stream")
    python = {name for name in modules if name.endswith(".py")}
    assert python, "no modules found under stream/"
    assert python - wheel_names == set(), "modules missing from the wheel: add their package to pyproject.toml"


def test_wheel_holds_the_pages(wheel_names: set[str]) -> None:
    pages = _source_files(ROOT / "static", "stream/static")
    assert {"stream/static/index.html", "stream/static/patient.html", "stream/static/clinician.html"} <= pages
    assert pages - wheel_names == set()


def test_wheel_holds_the_data_and_templates(wheel_names: set[str]) -> None:
    data = {f"stream/data/{p.name}" for p in (ROOT / "stream" / "data").iterdir() if p.is_file()}
    shipped = {"normal_cooccurrence.csv", "face_landmark.tflite", "iris_landmark.tflite", "NOTICE.md"}
    assert {f"stream/data/{name}" for name in shipped} <= data
    templates_dir = ROOT / "stream" / "report" / "templates"
    templates = _source_files(templates_dir, "stream/report/templates") if templates_dir.is_dir() else set()
    assert (data | templates) - wheel_names == set()
    assert "stream/py.typed" in wheel_names


def test_installed_package_finds_its_pages() -> None:
    # The server reads the pages through importlib.resources, not a path relative to the source tree.
    from stream.server.app import STATIC_DIR

    assert (STATIC_DIR / "index.html").is_file()
    assert (STATIC_DIR / "js" / "common.js").is_file()
