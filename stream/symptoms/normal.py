"""The normal-subject AU co-occurrence matrix that masks pairs healthy faces move together.

Entry [i][j] is P(AU_i active | AU_j active) in the same frame of healthy subjects, rows and
columns in ``AU_NAMES`` order: the layout of the patient matrices of eq. 7. The package ships
one computed from DISFA's labels (``stream/data/normal_cooccurrence.csv``, see docs/symptoms.md);
a clinic may pass its own, built from recordings of healthy volunteers, as JSON or CSV.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from stream.aus import AU_NAMES, N_AUS
from stream.errors import InputError

DEFAULT_RESOURCE = "data/normal_cooccurrence.csv"

_AU_ORDER = ",".join(AU_NAMES)
_EXPECTED = f"{N_AUS} rows of {N_AUS} numbers in [0, 1], rows and columns in AU order {_AU_ORDER}"


def load_normal_cooccurrence(path: str | Path | None = None) -> np.ndarray:
    """A (12, 12) float matrix: the shipped DISFA default for ``None``, else the file at ``path``.

    JSON: a list of 12 lists of 12 numbers. CSV: 12 lines of 12 comma-separated numbers; lines
    starting with '#' are comments, and a first row naming the AUs in order is allowed.
    Raises ``InputError`` naming the file and what is wrong with it.
    """
    if path is None:
        text = (resources.files("stream") / DEFAULT_RESOURCE).read_text(encoding="utf-8")
        return _parse_csv(text, f"shipped normal co-occurrence file stream/{DEFAULT_RESOURCE}")

    path = Path(path)
    label = f"normal co-occurrence file {path}"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(
            f"{label} does not exist: give a JSON or CSV file of {_EXPECTED}, "
            "or leave the option out to use the shipped DISFA default"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{label} is not a text file: expected JSON or CSV with {_EXPECTED}") from None
    except OSError as error:
        raise InputError(f"{label} cannot be read ({error.strerror}): expected a JSON or CSV file") from None

    suffix = path.suffix.lower()
    is_json = suffix == ".json" or (suffix != ".csv" and text.lstrip().startswith("["))
    return _parse_json(text, label) if is_json else _parse_csv(text, label)


def _parse_json(text: str, label: str) -> np.ndarray:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise InputError(f"{label}: not valid JSON ({error.msg} at {where})") from None
    if not isinstance(data, list):
        raise InputError(f"{label}: expected a JSON list of {N_AUS} lists ({_EXPECTED}), got {type(data).__name__}")
    rows = []
    for r, row in enumerate(data, start=1):
        if not isinstance(row, list):
            raise InputError(f"{label}: row {r} is {type(row).__name__}, expected a list of {N_AUS} numbers")
        rows.append((f"row {r}", row))
    return _matrix(rows, label)


def _parse_csv(text: str, label: str) -> np.ndarray:
    rows: list[tuple[str, list[str]]] = []
    header_allowed = True
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        cells = [cell.strip() for cell in stripped.split(",")]
        if header_allowed and not _is_number(cells[0]):
            if [cell.upper() for cell in cells] != list(AU_NAMES):
                raise InputError(
                    f"{label}: header row (line {line_number}) names {','.join(cells)}; "
                    f"expected {_AU_ORDER} in this order, or no header"
                )
            header_allowed = False
            continue
        header_allowed = False
        rows.append((f"row {len(rows) + 1} (line {line_number})", cells))
    return _matrix(rows, label)


def _matrix(rows: Sequence[tuple[str, Sequence[object]]], label: str) -> np.ndarray:
    if len(rows) != N_AUS:
        raise InputError(f"{label}: has {len(rows)} rows of numbers, expected {_EXPECTED}")
    matrix = np.empty((N_AUS, N_AUS))
    for i, (where, cells) in enumerate(rows):
        if len(cells) != N_AUS:
            raise InputError(f"{label}: {where} has {len(cells)} values, expected {N_AUS} in AU order {_AU_ORDER}")
        for j, cell in enumerate(cells):
            value = _as_number(cell)
            if value is None:
                raise InputError(f"{label}: {where}, column {AU_NAMES[j]}: {cell!r} is not a number")
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise InputError(f"{label}: {where}, column {AU_NAMES[j]}: {cell} is not a probability in [0, 1]")
            matrix[i, j] = value
    return matrix


def _as_number(cell: object) -> float | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        return float(cell)
    if isinstance(cell, str) and _is_number(cell):
        return float(cell)
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
