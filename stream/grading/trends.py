"""Trends: how every graded figure changed since the previous session and since the first.

A patient's history page and exports show the change of each score and of each region's weaker
side %, so this reads grades (or their stored JSON) in time order and compares the latest with the
nearest earlier session that has the figure. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream.grading.results import Grades, region_figure, stored_scores


@dataclass(frozen=True)
class Change:
    key: str
    title: str
    latest: float | None
    previous: float | None
    first: float | None
    since_previous: float | None
    since_first: float | None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def figures(grades: Grades | Mapping[str, Any]) -> dict[str, tuple[str, float | None]]:
    """key -> (title, value) of every number a trend follows: the scores and each region's weaker %.

    ``grades``: ``Grades`` or its JSON form (as stored).
    """
    data = grades.to_json() if isinstance(grades, Grades) else grades
    out: dict[str, tuple[str, float | None]] = {}
    for score in stored_scores(data):
        kind = {"voluntary": "voluntary 1-5", "synkinesis": "synkinesis 0-3"}.get(score["kind"])
        out[score["key"]] = (f"{score['title']}: {kind}" if kind else score["title"], score["value"])
    for name, region in (data.get("regions") or {}).items():
        key, title = region_figure(name)
        out[key] = (title, region.get("weaker_percent"))
    return out


def changes(history: Sequence[Grades | Mapping[str, Any]]) -> list[Change]:
    """Change of every figure in the latest session since the previous one and since the first.

    ``history`` in time order. A figure missing in a session (not graded) compares with the nearest
    earlier session that has it; a change needs a value at both ends, else it is None.
    """
    if not history:
        return []
    series = [figures(g) for g in history]
    keys: dict[str, str] = {}
    for f in series:
        for k, (title, _) in f.items():
            keys.setdefault(k, title)
    out = []
    for key, title in keys.items():
        values = [f[key][1] if key in f else None for f in series]
        latest = values[-1]
        previous = next((v for v in reversed(values[:-1]) if v is not None), None)
        first = next((v for v in values if v is not None), None)
        if first is not None and latest is not None and values.index(first) == len(values) - 1:
            first = None  # the latest is the first graded one: nothing to compare with
        out.append(
            Change(
                key,
                title,
                latest,
                previous,
                first,
                None if latest is None or previous is None else latest - previous,
                None if latest is None or first is None else latest - first,
            )
        )
    return out
