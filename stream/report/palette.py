"""The colours of stream, read from one file: ``static/css/palette.css`` (package ``stream.static``).

The dashboard loads that file as ``/static/css/palette.css`` and reads its CSS variables; the report
inlines it and draws its SVG with the values read here. Changing a colour there changes it in the
report, the dashboard and their legends at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

_VARIABLE = re.compile(r"--([a-z-]+)\s*:\s*(#[0-9A-Fa-f]{6})\s*;")


@dataclass(frozen=True)
class Palette:
    """Colours as ``#rrggbb``; ``left``/``right`` are the patient's sides."""

    left: str
    right: str
    scale_negative: str  # diverging scale at -1
    scale_neutral: str  # at 0
    scale_positive: str  # at +1
    masked: str
    no_data: str
    threshold: str

    def side(self, side: str) -> str:
        """The colour of the patient's ``"left"`` or ``"right"``."""
        if side not in ("left", "right"):
            raise ValueError(f"a side is 'left' or 'right', got {side!r}")
        return self.left if side == "left" else self.right


def palette_css() -> str:
    """The text of ``palette.css`` (CSS custom properties on ``:root``)."""
    return files("stream.static").joinpath("css/palette.css").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load_palette() -> Palette:
    """The palette defined in ``palette.css``; raises if a colour is missing there."""
    return parse_palette(palette_css())


def parse_palette(css: str) -> Palette:
    values = {name.replace("-", "_"): colour.upper() for name, colour in _VARIABLE.findall(css)}
    names = list(Palette.__dataclass_fields__)
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(
            "palette.css lacks the colour(s) "
            + ", ".join("--" + n.replace("_", "-") for n in missing)
            + " (each as '--name: #rrggbb;')"
        )
    return Palette(**{n: values[n] for n in names})
