"""Verification of downloaded files: expected sizes and hashes, chunked digests, and ``.sha256`` records.

Hashes: ``sha256`` where it is known; the published ``md5`` where that is all there is (NYU's labeled
``.mat``); ``git_sha1``, the git blob id (SHA-1 of ``"blob <size>\\0" + content``), for files that are
plain blobs in a git repository whose tree lists them but whose contents we could not hash (METER XS/S).
A download with no hash configured is accepted with a loud warning, and its sha256 is written to
``<dest>.sha256`` (``sha256sum`` format) so that the user can pin it; later calls check the file against
that record.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthxai.errors import ConfigError
from depthxai.fileio import write_text

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_HEX_LENGTHS = {"sha256": 64, "md5": 32, "git_sha1": 40}


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must match. Every field is optional; hashes are lowercase hex."""

    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    git_sha1: str | None = None

    @property
    def hashes(self) -> dict[str, str]:
        """The configured hashes, ``{algorithm: hex}``."""
        return {name: value for name in _HEX_LENGTHS if (value := getattr(self, name)) is not None}

    def describe(self) -> str:
        """``size N bytes, sha256 X`` (or ``no size or hash pinned``) for error messages."""
        parts = [f"size {self.size:,} bytes"] if self.size is not None else []
        parts += [f"{name} {value}" for name, value in self.hashes.items()]
        return ", ".join(parts) if parts else "no size or hash pinned"


def _normalise_hash(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = str(value).strip().lower()
    if not re.fullmatch(f"[0-9a-f]{{{_HEX_LENGTHS[name]}}}", value):
        raise ConfigError(f"{name}: {value!r} is not a {_HEX_LENGTHS[name]}-digit hex digest")
    return value


def file_digests(path: str | os.PathLike[str], algorithms: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file in one chunked pass (files are GBs; memory stays at one chunk).

    Args:
        path: the file.
        algorithms: any of ``sha256``, ``md5``, ``git_sha1`` (git blob id: SHA-1 of ``"blob <size>\\0"`` + bytes).

    Returns:
        ``{algorithm: lowercase hex digest}``.
    """
    path = Path(path)
    hashers = _new_hashers(algorithms, path.stat().st_size)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _new_hashers(algorithms: Iterable[str], size: int) -> dict[str, Any]:
    hashers: dict[str, Any] = {}
    for name in dict.fromkeys(algorithms):
        if name == "git_sha1":
            hashers[name] = hashlib.sha1(usedforsecurity=False)
            hashers[name].update(b"blob %d\0" % size)
        elif name in ("sha256", "md5"):
            hashers[name] = hashlib.new(name, usedforsecurity=False)
        else:
            raise ValueError(f"unknown hash algorithm {name!r}")
    return hashers


def _mismatches(size: int, digests: Mapping[str, str], expected: Expected) -> list[str]:
    """Human-readable differences between a file's size/digests and ``expected`` (empty: it verifies)."""
    problems = []
    if expected.size is not None and size != expected.size:
        problems.append(f"size: expected {expected.size:,} bytes, got {size:,}")
    for name, want in expected.hashes.items():
        if name in digests and digests[name] != want:
            problems.append(f"{name}: expected {want}, got {digests[name]}")
    return problems


def _verify(path: Path, expected: Expected) -> tuple[list[str], dict[str, str]]:
    """Check ``path`` against ``expected``; returns (mismatches, digests). sha256 is always computed."""
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        return _mismatches(size, {}, expected), {}  # no need to hash gigabytes to know it is wrong
    digests = file_digests(path, ["sha256", *expected.hashes])
    return _mismatches(size, digests, expected), digests


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _read_sidecar(dest: Path) -> str | None:
    try:
        text = _sidecar(dest).read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    return text[0].lower() if text and re.fullmatch(r"[0-9a-fA-F]{64}", text[0]) else None


def _record_unpinned(url: str, dest: Path, sha256: str) -> None:
    """Warn that ``dest`` was accepted without a pinned hash, and write its sha256 beside it."""
    write_text(_sidecar(dest), f"{sha256}  {dest.name}\n")
    log.warning(
        "UNVERIFIED DOWNLOAD: no sha256/md5 is pinned for %s, so %s was accepted without a hash check. "
        "Its sha256 is %s (written to %s); pin it in the config's downloads entry (sha256: %s).",
        url, dest, sha256, _sidecar(dest), sha256,
    )
