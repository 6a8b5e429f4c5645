"""Model weights as data: where a file comes from, its checksum, the settings and preprocessing it needs.

As in torchvision's ``Weights`` entries, a ``WeightsSpec`` sits apart from the architecture code and
carries what a loader must know besides the tensors: the URL, the sha256, the architecture settings
(``config``) and the preprocessing the weights were trained with. ``resolve`` turns what a user gave
(a file path, a URL, a known name, or nothing) into a verified local file; URLs (http, https, file) are
downloaded once into ``cache_dir()`` and checked against the checksum. Used by the RetinaFace detector
(``stream/face/retinaface/``) and the DEM checkpoints (``stream/au/dem/checkpoint.py``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.errors import WeightsError

DOWNLOAD_TIMEOUT_S = 15.0  # per socket operation; this tool often runs offline, so fail fast
URL_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class WeightsSpec:
    """One weights file we know: its name, origin, checksum, and what loading and running it needs.

    ``name``: what ``--weights`` accepts and the file's name in the cache (plus ``suffix``).
    ``url``: where to download it (http, https or file); ``sha256``: its checksum, None when nobody
    published one. ``config``: the architecture settings it goes with (e.g. a RetinaFace variant);
    ``preprocessing``: how an image becomes the network's input (colour order, mean, std, size).
    """

    name: str
    url: str
    sha256: str | None
    config: Any = None
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    suffix: str = ".pth"

    @property
    def filename(self) -> str:
        return f"{self.name}{self.suffix}"


def cache_dir() -> Path:
    """Where downloaded weights live: ``$STREAM_CACHE_DIR`` or ``~/.cache/stream-fp/weights``."""
    configured = os.environ.get("STREAM_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "stream-fp" / "weights"


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(text: str) -> bool:
    return urllib.parse.urlparse(text).scheme in URL_SCHEMES


def resolve(
    given: str | os.PathLike[str] | None,
    *,
    known: Iterable[WeightsSpec] = (),
    sha256: str | None = None,
    what: str = "weights",
    how_to_get: str = "",
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """The verified local file for what the user ``given``: a file path, a URL, the name or URL of a ``known``
    spec, or None (the first ``known`` file already in the cache).

    ``sha256``: the checksum the file must have; a known spec's own checksum when not given. ``what`` names
    the file in messages ("RetinaFace weights") and ``how_to_get`` ends them. Raises ``WeightsError`` for a
    missing file, a failed download or a checksum mismatch.
    """
    known = tuple(known)
    hint = f": {how_to_get}" if how_to_get else ""
    if given is None:
        for spec in known:
            cached = cache_dir() / spec.filename
            if cached.is_file():
                return _verified_cached(cached, sha256 or spec.sha256, spec.url, timeout, what, hint)
        raise WeightsError(f"no {what} given and none found in {cache_dir()}{hint}")

    text = os.fspath(given)
    match = next((s for s in known if text in (s.name, s.url)), None)
    url = match.url if match else text
    if is_url(url):
        expected = sha256 or (match.sha256 if match else None)
        filename = match.filename if match else _cache_name(url)
        return _verified_cached(cache_dir() / filename, expected, url, timeout, what, hint)

    path = Path(text).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what} file {path} does not exist{hint}")
    verify(path, sha256, what)
    return path


def verify(path: Path, sha256: str | None, what: str = "weights") -> None:
    """``WeightsError`` unless ``path`` has checksum ``sha256`` (None: nothing to check)."""
    if sha256 and (actual := sha256_of(path)) != sha256.lower():
        raise WeightsError(f"{what} {path} have sha256 {actual}, expected {sha256.lower()}: wrong or corrupt file")


def _cache_name(url: str) -> str:
    # Prefixed with a hash of the URL: different sites publish different files under the same name.
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pth"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def _verified_cached(path: Path, sha256: str | None, url: str, timeout: float, what: str, hint: str) -> Path:
    """``path`` if it exists with the right checksum, else a fresh download of ``url`` into it."""
    if path.is_file():
        if sha256 is None or sha256_of(path) == sha256.lower():
            return path
        path.unlink()  # corrupt or replaced: download again rather than trust it
    download(url, path, sha256, timeout=timeout, what=what, hint=hint)
    return path


def download(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    what: str = "weights",
    hint: str = "",
) -> None:
    """Download ``url`` to ``dest`` via a temporary file in the same folder, renamed only once complete and verified."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:
        raise WeightsError(
            f"cannot write to the weights cache {dest.parent} ({exc}): set STREAM_CACHE_DIR to a writable folder"
        ) from exc
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, 0.0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if time.monotonic() - shown > 0.25:
                    shown = time.monotonic()
                    _progress(url, done, total)
            _progress(url, done, total, end="\n")
        if total and done != total:
            raise WeightsError(f"download of {url} stopped after {done} of {total} bytes: try again")
        if sha256 is not None and (actual := digest.hexdigest()) != sha256.lower():
            raise WeightsError(
                f"download of {url} has sha256 {actual}, expected {sha256.lower()}: the file was deleted; "
                "check the URL (or the checksum you gave)"
            )
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError and timeouts are OSErrors
        raise WeightsError(f"cannot download {what} from {url} ({exc}){hint}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _progress(url: str, done: int, total: int, end: str = "") -> None:
    amount = f"{done / 1e6:.1f} / {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
    print(f"\rdownloading {url}: {amount}", end=end, file=sys.stderr, flush=True)
