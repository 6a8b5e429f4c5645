"""The per-side AU series as CSV (``au_series.csv``): one row per keyframe.

The writer produces exactly :data:`SERIES_COLUMNS`. The reader is for researchers who bring a
series from another tool, so it is lenient about layout (column order, extra columns, missing
``frame``/``time_s``) and strict about values (every AU column, every cell a number in 0..5).
docs/formats.md describes the format; keep the two in step.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from stream.aus import AU_NAMES, MAX_INTENSITY, N_AUS
from stream.errors import InputError
from stream.types import AU_COLUMNS, CLOSURE_COLUMNS, MOVE_COLUMNS, AUSeries

SERIES_COLUMNS: tuple[str, ...] = ("frame", "time_s", *AU_COLUMNS)
# CLOSURE_COLUMNS are optional, written when the estimator measures eye closure (the flow estimator does).

DEFAULT_FPS = 30.0
"""Frame rate assumed by :func:`read_series_csv` when a file has ``frame`` but no ``time_s``."""


def format_series_csv(series: AUSeries) -> str:
    """The CSV text of ``series``: header :data:`SERIES_COLUMNS`, time_s to 3 and AU values to 4 decimals.

    Raises ValueError for a non-finite time or AU value, or one outside 0..5, because the file
    would not read back (:func:`read_series_csv` rejects them).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = AU_COLUMNS
    parts = [np.asarray(series.left, float), np.asarray(series.right, float)]
    if series.closure is not None:
        columns = (*columns, *CLOSURE_COLUMNS)
        parts.append(np.asarray(series.closure, float))
    if series.movement is not None:
        columns = (*columns, *MOVE_COLUMNS)
        parts.append(np.asarray(series.movement, float).reshape(len(series), -1))
    writer.writerow(("frame", "time_s", *columns))
    values = np.concatenate(parts, axis=1)
    times = np.asarray(series.time_s, float)
    # region movement may exceed 5 (it is not clipped, docs/au_flow.md); everything else is 0..5
    ceiling = np.array([np.inf if c in MOVE_COLUMNS else MAX_INTENSITY for c in columns])
    for k in range(len(series)):
        frame = int(series.frames[k])
        if not math.isfinite(times[k]):
            raise ValueError(f"AU series keyframe {k} (frame {frame}) has time_s {times[k]}; times must be finite")
        bad = ~np.isfinite(values[k]) | (values[k] < 0) | (values[k] > ceiling)
        if bad.any():
            col = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"AU series keyframe {k} (frame {frame}) has {columns[col]} = {values[k, col]}; "
                f"AU intensities must be finite and within 0..{MAX_INTENSITY:g} (clip the estimator's output)"
            )
        writer.writerow([frame, f"{times[k]:.3f}", *(f"{v:.4f}" for v in values[k])])
    return out.getvalue()


def write_series_csv(path: str | Path, series: AUSeries) -> Path:
    """Write ``series`` to ``path`` (see :func:`format_series_csv`); returns the path."""
    path = Path(path)
    path.write_text(format_series_csv(series), encoding="utf-8", newline="")
    return path


def read_series_csv(path: str | Path, *, fps: float = DEFAULT_FPS) -> AUSeries:
    """Read a per-side AU series from a comma-separated file with a header line.

    Required columns: ``left_AUn`` and ``right_AUn`` for each of the 12 AUs (names exact, after
    stripping spaces), in any order. ``frame`` and ``time_s`` are optional: without ``frame`` the
    frame is the 0-based data-row number; without ``time_s`` the time is ``frame / fps``. Other
    columns are ignored. A header with no data rows gives an empty series.

    Raises InputError naming the file, the line and the column for: a missing or unreadable file,
    an empty file, missing or duplicated columns, a row with the wrong number of fields, an empty,
    non-numeric or non-finite cell, an AU value outside 0..5 (values are not clipped), a frame
    that is not a non-negative integer.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet exports often start with a BOM
    except FileNotFoundError:
        raise InputError(f"AU series file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"AU series file {path} is a directory, expected a CSV file") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"AU series file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    except OSError as exc:
        raise InputError(f"AU series file {path} cannot be read: {exc.strerror or exc}") from None

    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    header_line = 0
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            header_line = reader.line_num
            break
    if header is None:
        raise InputError(
            f"AU series file {path} is empty: expected a header line with {', '.join(SERIES_COLUMNS[:4])}, ... "
            f"(see docs/formats.md)"
        )
    columns = _locate_columns(path, header, header_line)
    has_closure = all(name in columns for name in CLOSURE_COLUMNS)
    has_movement = all(name in columns for name in MOVE_COLUMNS)
    value_columns = (*AU_COLUMNS, *(CLOSURE_COLUMNS if has_closure else ()), *(MOVE_COLUMNS if has_movement else ()))

    frames: list[int] = []
    times: list[float] = []
    values: list[list[float]] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines (often a trailing one) carry no keyframe
        line = reader.line_num
        if len(row) != len(header):
            raise InputError(
                f"AU series file {path}, line {line}: {len(row)} fields but the header (line {header_line}) "
                f"has {len(header)}"
            )
        values.append(
            [
                _movement_value(path, line, name, row[columns[name]])
                if name in MOVE_COLUMNS
                else _au_value(path, line, name, row[columns[name]])
                for name in value_columns
            ]
        )
        frame = _frame_number(path, line, row[columns["frame"]]) if "frame" in columns else len(frames)
        frames.append(frame)
        if "time_s" in columns:
            times.append(_number(path, line, "time_s", row[columns["time_s"]]))
        else:
            times.append(frame / fps)

    table = np.asarray(values, dtype=float).reshape(len(values), len(value_columns))
    k = 2 * N_AUS
    closure = None
    if has_closure:
        closure, k = table[:, k : k + 2].copy(), k + 2
    movement = table[:, k : k + 6].reshape(-1, 2, 3).copy() if has_movement else None
    return AUSeries(
        frames=np.asarray(frames, dtype=int),
        time_s=np.asarray(times, dtype=float),
        left=table[:, :N_AUS].copy(),
        right=table[:, N_AUS : 2 * N_AUS].copy(),
        closure=closure,
        movement=movement,
    )


def _locate_columns(path: Path, header: list[str], line: int) -> dict[str, int]:
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in positions and name in SERIES_COLUMNS:
            raise InputError(
                f"AU series file {path}, line {line}: column {name!r} appears twice "
                f"(columns {positions[name] + 1} and {i + 1})"
            )
        positions.setdefault(name, i)
    missing = [name for name in AU_COLUMNS if name not in positions]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t"):
            hint = " The header looks separated by ';' or tabs: the file must be comma-separated."
        raise InputError(
            f"AU series file {path}, line {line}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}. Every left_AUn and right_AUn column for {', '.join(AU_NAMES)} is "
            f"required (frame and time_s are optional).{hint}"
        )
    return {name: positions[name] for name in (*SERIES_COLUMNS, *CLOSURE_COLUMNS, *MOVE_COLUMNS) if name in positions}


def _number(path: Path, line: int, column: str, cell: str) -> float:
    text = cell.strip()
    if not text:
        raise InputError(f"AU series file {path}, line {line}, column {column}: empty cell (a number is required)")
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"AU series file {path}, line {line}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(
            f"AU series file {path}, line {line}, column {column}: {text!r} is not a finite number "
            f"(drop frames the other tool could not measure)"
        )
    return value


def _au_value(path: Path, line: int, column: str, cell: str) -> float:
    value = _number(path, line, column, cell)
    if not 0.0 <= value <= MAX_INTENSITY:
        raise InputError(
            f"AU series file {path}, line {line}, column {column}: {cell.strip()} is outside the AU intensity "
            f"scale 0..{MAX_INTENSITY:g} (values are not clipped: rescale or clip them in the source)"
        )
    return value


def _movement_value(path: Path, line: int, column: str, cell: str) -> float:
    value = _number(path, line, column, cell)
    if value < 0:
        raise InputError(f"AU series file {path}, line {line}, column {column}: region movement {value} is negative")
    return value


def _frame_number(path: Path, line: int, cell: str) -> int:
    value = _number(path, line, "frame", cell)
    if value < 0 or value != int(value):
        raise InputError(
            f"AU series file {path}, line {line}, column frame: {cell.strip()} is not a non-negative whole frame number"
        )
    return int(value)
