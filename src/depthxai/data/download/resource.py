"""One entry of the config's ``downloads`` table: its fields checked, the file fetched, archives extracted.

:func:`fetch_resource` runs one entry (:func:`~depthxai.data.download.fetching.fetch`, then
:func:`~depthxai.data.download.extraction.extract` for archives); :func:`check_spec` validates an entry and
names the offending key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from depthxai.data.download.extraction import extract
from depthxai.data.download.fetching import fetch
from depthxai.data.download.verify import _HEX_LENGTHS, _normalise_hash
from depthxai.errors import ConfigError

DOWNLOAD_KINDS = ("file", "zip", "tar")
SPEC_FIELDS = frozenset(
    {"key", "url", "filename", "size", "sha256", "md5", "git_sha1", "kind", "extract_members", "extract_dir", "note"}
)


def check_spec(spec: Mapping[str, Any], where: str = "downloads") -> None:
    """Validate one ``downloads`` entry (fields :data:`SPEC_FIELDS`); raise ConfigError naming the key."""
    unknown = sorted(set(spec) - SPEC_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(SPEC_FIELDS)}")
    for field in ("url", "filename"):
        if not isinstance(spec.get(field), str) or not spec[field]:
            raise ConfigError(f"{where}.{field}: required (a non-empty string)")
    if "/" in spec["filename"] or spec["filename"] in (".", ".."):
        raise ConfigError(f"{where}.filename: {spec['filename']!r} must be a plain file name")
    kind = spec.get("kind", "file")
    if kind not in DOWNLOAD_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {DOWNLOAD_KINDS}")
    size = spec.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ConfigError(f"{where}.size: {size!r} must be a byte count or null")
    for name in _HEX_LENGTHS:
        try:
            _normalise_hash(name, spec.get(name))
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None
    members = spec.get("extract_members")
    if members is not None and (kind == "file" or not isinstance(members, list)
                                or not all(isinstance(m, str) and m for m in members)):
        raise ConfigError(f"{where}.extract_members: a list of glob patterns, only for kind zip/tar")
    extract_dir = spec.get("extract_dir")
    if extract_dir is not None and (kind == "file" or not isinstance(extract_dir, str) or "/" in extract_dir
                                    or extract_dir in ("", ".", "..")):
        raise ConfigError(f"{where}.extract_dir: a plain folder name, only for kind zip/tar")


def fetch_resource(
    spec: Mapping[str, Any],
    dest_dir: str | os.PathLike[str],
    mirror: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Fetch one ``downloads`` entry into ``dest_dir`` and, for archives, extract it.

    Args:
        spec: ``{url, filename, size?, sha256?, md5?, git_sha1?, kind?, extract_members?, extract_dir?, key?,
            note?}``. ``kind`` is ``file`` (default), ``zip`` or ``tar``.
        dest_dir: the downloads folder; the file is saved as ``dest_dir / filename``.
        mirror: mirror folder (default ``$DEPTHXAI_MIRROR``).

    Returns:
        The file (kind ``file``), or the extraction folder ``dest_dir / (extract_dir or key or filename stem)``
        for archives; that folder holds the marker ``.<filename>.complete`` once extraction finished.
    """
    where = f"downloads.{spec.get('key', spec.get('filename', '?'))}"
    check_spec(spec, where)
    dest_dir = Path(dest_dir)
    path = fetch(
        spec["url"], dest_dir / spec["filename"], sha256=spec.get("sha256"), md5=spec.get("md5"),
        git_sha1=spec.get("git_sha1"), size=spec.get("size"), mirror=mirror, progress=progress, timeout=timeout,
    )
    kind = spec.get("kind", "file")
    if kind == "file":
        return path
    target = dest_dir / (spec.get("extract_dir") or spec.get("key") or Path(spec["filename"]).name.split(".")[0])
    extract(path, target, members=spec.get("extract_members"))
    return target
