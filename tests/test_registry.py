"""Built by name: an unknown name or option fails loudly, naming what is valid; exit codes come from one table."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from stream.au.base import build_estimator
from stream.cli import main
from stream.errors import (
    EXIT_CODES,
    CheckpointError,
    ConfigError,
    InputError,
    NoFaceError,
    StreamError,
    VideoDecodeError,
    WeightsError,
    exit_code,
)
from stream.face.detect import available_detectors, build_detector
from stream.registry import Registry


class Thing:
    def __init__(self, size: int) -> None:
        self.size = size


def test_registry_builds_by_name_with_options() -> None:
    things: Registry[Thing] = Registry("thing")
    things.register("small")(lambda size=1: Thing(size))
    assert things.names() == ["small"]
    assert things.options("small") == ["size"]
    assert things.build("small", size=3).size == 3


def test_unknown_name_lists_the_valid_ones() -> None:
    things: Registry[Thing] = Registry("thing")
    things.register("small")(lambda: Thing(1))
    things.register("large")(lambda: Thing(9))
    with pytest.raises(ConfigError, match=r"unknown thing 'medium'; choose one of large, small"):
        things.build("medium")


def test_misspelt_option_is_refused_and_none_means_not_set() -> None:
    things: Registry[Thing] = Registry("thing")
    things.register("small")(lambda size=1: Thing(size))
    with pytest.raises(ConfigError, match=r"thing 'small' has no option 'sise'; its options are size"):
        things.build("small", sise=3)
    assert things.build("small", weights=None).size == 1  # an unset config field is not an option given


def test_builtin_modules_are_imported_once_on_first_use(tmp_path, monkeypatch) -> None:
    calls: list[int] = []
    things: Registry[Thing] = Registry("thing", modules={"late": "late_thing"})
    # the module registers into ``things`` as stream.face.mtcnn registers into DETECTORS
    monkeypatch.setitem(sys.modules, "thing_registry", SimpleNamespace(things=things, Thing=Thing, calls=calls))
    (tmp_path / "late_thing.py").write_text(
        "from thing_registry import Thing, calls, things\ncalls.append(1)\nthings.register('late')(lambda: Thing(2))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert calls == [] and "late_thing" not in sys.modules
        assert things.names() == ["late"] and things.names() == ["late"]
        assert len(calls) == 1
        assert things.build("late").size == 2
    finally:
        sys.modules.pop("late_thing", None)


def test_real_builders_reject_options_they_do_not_take() -> None:
    assert {"mtcnn", "retinaface"} <= set(available_detectors())
    with pytest.raises(ConfigError, match=r"face detector 'mtcnn' has no option 'weights'; its options are device"):
        build_detector("mtcnn", weights="retinaface.pth")
    with pytest.raises(ConfigError, match=r"AU estimator 'flow' has no option 'checkpoint'"):
        build_estimator("flow", checkpoint="dem.pt")
    with pytest.raises(ConfigError, match=r"unknown AU estimator 'dme'; choose one of dem, flow"):
        build_estimator("dme")
    assert build_detector("mtcnn", weights=None, device="cpu").name == "mtcnn"


def test_exit_code_table() -> None:
    assert exit_code(NoFaceError("x")) == 3
    assert exit_code(VideoDecodeError("x")) == exit_code(ConfigError("x")) == exit_code(InputError("x")) == 2
    assert exit_code(CheckpointError("x")) == exit_code(WeightsError("x")) == 2
    assert exit_code(StreamError("x")) == 1
    # Most specific first: no row is shadowed by an earlier, wider one.
    kinds = [kind for kind, _ in EXIT_CODES]
    for i, kind in enumerate(kinds):
        assert not any(issubclass(kind, earlier) for earlier in kinds[:i]), kind


def test_cli_reports_a_bad_option_as_bad_input(tmp_path, capsys) -> None:
    csv = tmp_path / "series.csv"
    csv.write_text("frame,time_s\n")
    code = main(["analyze", "--au-csv", str(csv), "--out", str(tmp_path / "out"), "--helpers", "-1"])
    assert code == 2
    assert "--helpers must be >= 0, got -1" in capsys.readouterr().err


def test_cli_reports_a_missing_bench_video(tmp_path, capsys) -> None:
    code = main(["bench", str(tmp_path / "missing.mp4"), "--detector", "mtcnn"])
    assert code == 2
    assert "benchmark video" in capsys.readouterr().err


def test_an_internal_value_error_is_not_bad_input(monkeypatch, tmp_path) -> None:
    # A ValueError from deep inside is a bug: it keeps its traceback instead of exiting 2 as "bad input".
    import stream.cli

    def broken(args):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(stream.cli, "_cmd_bench", broken)
    with pytest.raises(ValueError, match="broadcast"):
        main(["bench", str(tmp_path / "clip.mp4")])
