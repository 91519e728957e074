"""Downloads that verify, resume and work offline, and archive extraction that cannot escape its folder.

Every real file the workflow needs (checkpoints, split files, NYU Depth v2, KITTI) goes through
:func:`fetch`, which tries, in this order:

1. ``dest`` itself: if it exists and verifies (size and hashes), it is returned without any network access.
2. A mirror folder (the ``mirror`` argument, else the environment variable ``DEPTHXAI_MIRROR``): a file
   with the same name is verified while it is copied, atomically, to ``dest``. The name looked up is
   ``dest``'s name (the config's ``filename``), then the URL's basename if that differs. A mirror copy
   that fails verification is refused, never used. This is how air-gapped machines and CI run.
3. The network. ``http(s)://`` URLs are streamed with :mod:`urllib.request` to ``dest + ".part"``; a partial
   file is resumed with an HTTP ``Range`` request (a server that answers 200 instead of 206 is handled by
   starting over); an HTML answer where a data file was expected (Google Drive's virus-scan page is the
   classic case) is detected and reported. ``gdrive://<file id>`` and
   ``gdrive://folders/<folder id>/<file name>`` go through the optional package ``gdown`` (imported only
   for such URLs). A file that fails verification is deleted and fetched again ``retries`` times, then
   :class:`~depthxai.errors.DownloadError` names the URL, the expected and the actual hash.

Hashes: ``sha256`` where it is known; the published ``md5`` where that is all there is (NYU's labeled
``.mat``); ``git_sha1``, the git blob id (SHA-1 of ``"blob <size>\\0" + content``), for files that are
plain blobs in a git repository whose tree lists them but whose contents we could not hash (METER XS/S).
A download with no hash configured is accepted with a loud warning, and its sha256 is written to
``<dest>.sha256`` (``sha256sum`` format) so that the user can pin it; later calls check the file against
that record.

:func:`extract` unpacks zip and tar archives into a temporary folder beside the target, refusing absolute
paths, ``..`` components, links that leave the target, entries that pass through a link, device files and
zip bombs, then moves the result into place and writes a marker (``.<archive name>.complete``) last, so that
an interrupted extraction never looks complete. :func:`fetch_resource` runs one entry of the config's
``downloads`` table (fetch, then extract archives).
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import inspect
import json
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from tqdm import tqdm

from depthxai.errors import ConfigError, DataError, DownloadError
from depthxai.fileio import atomic_path, write_json, write_text

log = logging.getLogger(__name__)

MIRROR_ENV = "DEPTHXAI_MIRROR"
CHUNK_BYTES = 1 << 20
USER_AGENT = "depthxai-downloader/0.1 (+https://pypi.org/project/depthxai)"
# A transfer that breaks off is resumed with a Range request this many times within one attempt.
MAX_RESUMES = 3
DOWNLOAD_KINDS = ("file", "zip", "tar")
SPEC_FIELDS = frozenset(
    {"key", "url", "filename", "size", "sha256", "md5", "git_sha1", "kind", "extract_members", "extract_dir", "note"}
)
_HEX_LENGTHS = {"sha256": 64, "md5": 32, "git_sha1": 40}


# --------------------------------------------------------------------------------------------- verification


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


# ------------------------------------------------------------------------------------------------- fetching


def resolve_mirror(mirror: str | os.PathLike[str] | None) -> Path | None:
    """The mirror folder to use: the argument if given (non-empty), else ``$DEPTHXAI_MIRROR``, else None."""
    value = mirror if mirror not in (None, "") else os.environ.get(MIRROR_ENV) or None
    return None if value is None else Path(value).expanduser()


def _url_basename(url: str) -> str:
    return PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name


def _by_hand(url: str, dest: Path, expected: Expected, mirror_dir: Path | None) -> str:
    """The instruction that ends every error message: what to place where, or which mirror to set."""
    searched = f" (searched: {mirror_dir})" if mirror_dir is not None else ""
    return (
        f"To continue without network, download {url} ({expected.describe()}) elsewhere and save it as {dest}; "
        f"or put a copy named {dest.name} in a mirror folder and point the environment variable {MIRROR_ENV} "
        f"(or the config key `mirror`) at that folder{searched}."
    )


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    git_sha1: str | None = None,
    size: int | None = None,
    mirror: str | os.PathLike[str] | None = None,
    retries: int = 1,
    timeout: float = 60,
    progress: bool = True,
) -> Path:
    """Make ``dest`` a verified copy of ``url``: from ``dest`` itself, a mirror folder, or the network.

    Args:
        url: ``http(s)://`` / ``file://`` URL, or ``gdrive://<file id>`` / ``gdrive://folders/<folder id>/<name>``.
        dest: where the file goes; its name is also the name looked up in the mirror.
        sha256, md5, git_sha1: expected hex digests (any subset; sha256 preferred).
        size: expected size in bytes.
        mirror: folder with pre-staged copies; default ``$DEPTHXAI_MIRROR``. The argument wins.
        retries: how many times a download that fails verification is deleted and fetched again.
        timeout: seconds to wait for the server (connect and between reads).
        progress: show a tqdm progress bar.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: no network and no (matching) mirror copy; an HTTP error; an HTML page instead of the
            file; a corrupt mirror copy; or a hash mismatch after ``retries`` re-fetches. Every message names
            the URL and ``dest`` and says what to place where by hand.
    """
    dest = Path(dest)
    expected = Expected(
        size=None if size is None else int(size),
        sha256=_normalise_hash("sha256", sha256),
        md5=_normalise_hash("md5", md5),
        git_sha1=_normalise_hash("git_sha1", git_sha1),
    )
    pinned = bool(expected.hashes)
    mirror_dir = resolve_mirror(mirror)

    if dest.is_file():
        recorded = None if pinned else _read_sidecar(dest)
        check = expected if recorded is None else Expected(size=expected.size, sha256=recorded)
        problems, digests = _verify(dest, check)
        if not problems:
            if not pinned and recorded is None:
                _record_unpinned(url, dest, digests["sha256"])
            return dest
        log.warning("%s exists but does not verify (%s); obtaining it again", dest, "; ".join(problems))
        dest.unlink()

    if mirror_dir is not None:
        source = _find_in_mirror(mirror_dir, dest, url)
        if source is not None:
            digests = _copy_verified(source, dest, expected, url)
            if not pinned:
                _record_unpinned(url, dest, digests["sha256"])
            return dest
        log.info("%s: no copy named %s in mirror %s; trying the network", url, dest.name, mirror_dir)

    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    by_hand = _by_hand(url, dest, expected, mirror_dir)
    problems: list[str] = []
    for attempt in range(retries + 1):
        if urllib.parse.urlsplit(url).scheme == "gdrive":
            _gdrive_download(url, part, timeout=timeout, progress=progress, by_hand=by_hand)
        else:
            _http_download(url, part, expected_size=expected.size, timeout=timeout, progress=progress,
                           by_hand=by_hand)
        if _looks_like_html_file(part) and not _html_expected(dest):
            part.unlink()
            raise DownloadError(_html_message(url, dest, by_hand))
        problems, digests = _verify(part, expected)
        if not problems:
            os.replace(part, dest)
            if not pinned:
                _record_unpinned(url, dest, digests["sha256"])
            return dest
        part.unlink()
        if attempt < retries:
            log.warning("%s: downloaded file does not verify (%s); deleted, fetching again", url, "; ".join(problems))
    raise DownloadError(
        f"{url}: the downloaded file does not match its pinned hash after {retries + 1} attempt(s) "
        f"({'; '.join(problems)}). The server may serve a different version of the file; check the URL and the "
        f"hash in the config. {by_hand}"
    )


def _find_in_mirror(mirror_dir: Path, dest: Path, url: str) -> Path | None:
    if not mirror_dir.is_dir():
        raise DownloadError(
            f"mirror folder {mirror_dir} does not exist; fix the `mirror` setting or the {MIRROR_ENV} variable"
        )
    for name in dict.fromkeys([dest.name, _url_basename(url)]):
        if name and (mirror_dir / name).is_file():
            return mirror_dir / name
    return None


def _copy_verified(source: Path, dest: Path, expected: Expected, url: str) -> dict[str, str]:
    """Copy ``source`` to ``dest`` atomically, hashing the bytes as they are written; refuse a mismatch."""
    algorithms = ["sha256", *expected.hashes]
    with atomic_path(dest) as tmp:
        hashers = _new_hashers(algorithms, source.stat().st_size)
        copied = 0
        with open(source, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(CHUNK_BYTES):
                out.write(chunk)
                copied += len(chunk)
                for hasher in hashers.values():
                    hasher.update(chunk)
        digests = {name: hasher.hexdigest() for name, hasher in hashers.items()}
        problems = _mismatches(copied, digests, expected)
        if problems:
            raise DownloadError(
                f"mirror copy {source} of {url} is corrupt or a different version ({'; '.join(problems)}); "
                f"it was not used. Replace it with a good copy or remove it from the mirror folder."
            )
    return digests


def _html_expected(dest: Path) -> bool:
    return dest.suffix.lower() in (".html", ".htm")


def _starts_like_html(head: bytes) -> bool:
    return head.lstrip()[:64].lower().startswith((b"<!doctype html", b"<html"))


def _looks_like_html_file(path: Path) -> bool:
    with open(path, "rb") as fh:
        return _starts_like_html(fh.read(512))


def _html_message(url: str, dest: Path, by_hand: str) -> str:
    return (
        f"{url}: the server answered with an HTML page instead of the file for {dest.name} (a login, quota or "
        f"'cannot scan for viruses' confirmation page: Google Drive serves one for large files). {by_hand}"
    )


def _content_range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header or "")
    return int(match.group(1)) if match else None


def _http_download(
    url: str, part: Path, *, expected_size: int | None, timeout: float, progress: bool, by_hand: str
) -> None:
    """Stream ``url`` into ``part``, resuming what ``part`` already holds; returns when the body is complete.

    Completeness is judged by Content-Length (a connection that closes early yields a short read, not an
    exception, in http.client); the caller verifies size and hash afterwards.
    """
    dest = part.with_name(part.name.removesuffix(".part"))
    restarted = False
    resumes_left = MAX_RESUMES
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
        if expected_size is not None and 0 < offset == expected_size:
            return  # a previous run finished the body but stopped before verifying it
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset and not restarted:  # our partial file is not a prefix the server knows
                part.unlink()
                restarted = True
                continue
            raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}. {by_hand}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            kept = f" The partial download {part} ({offset:,} bytes) is kept; rerun to resume." if offset else ""
            raise DownloadError(f"{url}: cannot reach the server ({reason}).{kept} {by_hand}") from None

        with response:
            content_type = response.headers.get("Content-Type", "")
            # A body that merely starts like HTML is caught by fetch() once the file is complete.
            if content_type.split(";")[0].strip().lower() == "text/html" and not _html_expected(dest):
                part.unlink(missing_ok=True)
                raise DownloadError(_html_message(url, dest, by_hand))
            status = getattr(response, "status", None) or 200
            if offset and status == 206 and _content_range_start(response.headers.get("Content-Range")) != offset:
                if restarted:
                    raise DownloadError(f"{url}: the server answered a Range request inconsistently. {by_hand}")
                part.unlink()
                restarted = True
                continue
            if offset and status != 206:
                log.info("%s: server ignored the Range request (HTTP %s); downloading from the start", url, status)
                offset = 0
            length_header = response.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            total = offset + length if length is not None else expected_size
            received = 0
            broken: str | None = None
            with open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress, leave=False,
            ) as bar:
                try:
                    while chunk := response.read(CHUNK_BYTES):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except (TimeoutError, ConnectionError, http.client.IncompleteRead) as exc:
                    broken = f"{type(exc).__name__}: {exc}"
        if broken is None and (length is None or received >= length):
            return
        resumes_left -= 1
        have = part.stat().st_size
        if resumes_left < 0:
            raise DownloadError(
                f"{url}: the transfer keeps breaking off ({broken or 'connection closed early'}); {part} holds "
                f"{have:,} bytes and is kept: rerun to resume. {by_hand}"
            )
        log.warning("%s: transfer broke off after %s bytes (%s); resuming with a Range request",
                    url, f"{have:,}", broken or "connection closed early")


def _gdrive_download(url: str, part: Path, *, timeout: float, progress: bool, by_hand: str) -> None:
    """Download a Google Drive file with gdown (optional dependency) into ``part``.

    ``gdrive://<file id>`` names a file; ``gdrive://folders/<folder id>/<name>`` names a file by its name in a
    shared folder (gdown lists the folder; an exact name match wins, else the single file with the same stem,
    since READMEs and Drive folders disagree on ``.pt`` vs ``.pth``).
    """
    try:
        import gdown  # noqa: PLC0415 -- optional dependency, needed only for Google Drive URLs
    except ImportError:
        raise DownloadError(
            f"{url} is on Google Drive, which needs the optional package gdown: run `pip install gdown` and rerun. "
            f"{by_hand}"
        ) from None
    parsed = urllib.parse.urlsplit(url)
    segments = [s for s in parsed.path.split("/") if s]
    try:
        if parsed.netloc == "folders":
            if len(segments) != 2:
                raise DownloadError(f"{url}: expected gdrive://folders/<folder id>/<file name>")
            folder_id, name = segments
            listing = gdown.download_folder(id=folder_id, skip_download=True, quiet=not progress)
            file_id = _pick_from_folder(url, name, [(PurePosixPath(f.path).name, f.id) for f in listing or []])
        else:
            if not parsed.netloc or segments:
                raise DownloadError(f"{url}: expected gdrive://<file id> or gdrive://folders/<folder id>/<file name>")
            file_id = parsed.netloc
        kwargs: dict[str, Any] = {"id": file_id, "output": str(part), "quiet": not progress, "resume": True}
        if "timeout" in inspect.signature(gdown.download).parameters:
            kwargs["timeout"] = timeout
        result = gdown.download(**kwargs)
    except DownloadError:
        raise
    except Exception as exc:  # noqa: BLE001 -- gdown raises requests/own exceptions; all mean "not downloaded"
        raise DownloadError(f"{url}: Google Drive download failed ({type(exc).__name__}: {exc}). {by_hand}") from exc
    if result is None or not part.is_file():
        raise DownloadError(f"{url}: Google Drive download failed (gdown returned no file). {by_hand}")


def _pick_from_folder(url: str, name: str, entries: Sequence[tuple[str, str]]) -> str:
    exact = [file_id for entry_name, file_id in entries if entry_name == name]
    same_stem = [(n, i) for n, i in entries if PurePosixPath(n).stem == PurePosixPath(name).stem]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(same_stem) == 1:
        log.info("%s: no file named %s in the folder; using %s", url, name, same_stem[0][0])
        return same_stem[0][1]
    listed = ", ".join(sorted(n for n, _ in entries)) or "nothing"
    raise DownloadError(f"{url}: the Drive folder has no unique file named {name!r} (it lists: {listed})")


# ------------------------------------------------------------------------------------- config entry -> file


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


# -------------------------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class _Entry:
    name: str  # normalised relative POSIX path
    kind: str  # file | dir | symlink
    size: int
    link: str | None  # symlink target, or the member name a tar hardlink refers to
    member: Any  # ZipInfo or TarInfo


def extraction_marker(archive: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> Path:
    """The marker file that says ``archive`` was extracted completely into ``target_dir``."""
    return Path(target_dir) / f".{Path(archive).name}.complete"


def is_extracted(
    archive: str | os.PathLike[str], target_dir: str | os.PathLike[str], members: Sequence[str] | None = None
) -> bool:
    """True if the marker exists and records this archive (same size) and the same ``members`` selection."""
    marker = extraction_marker(archive, target_dir)
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return (
        record.get("archive_size") == Path(archive).stat().st_size
        and record.get("members") == (list(members) if members is not None else None)
        and all((Path(target_dir) / name).exists() or (Path(target_dir) / name).is_symlink()
                for name in record.get("files", []))
    )


def extract(
    archive: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    *,
    members: Sequence[str] | None = None,
    max_ratio: float = 100.0,
    max_total_bytes: int = 256 * 2**30,
) -> list[Path]:
    """Safely extract a zip or tar(.gz/.bz2/.xz) archive into ``target_dir``.

    Nothing is written outside ``target_dir``: the archive is first checked as a whole (every entry, selected or
    not), then extracted into a temporary folder beside ``target_dir``, then moved in; the marker
    :func:`extraction_marker` is written last and lets a rerun skip the work.

    Args:
        archive: the archive (type detected from its content).
        target_dir: destination folder (created; existing files of the same names are replaced, others kept,
            so several archives can share one folder, e.g. the KITTI raw drives).
        members: glob patterns (:mod:`fnmatch`, ``*`` also matches ``/``) on entry names; None extracts all.
        max_ratio: refuse if the selected entries' total size exceeds this multiple of the archive's size
            (zip bomb); checked once that total exceeds 1 MiB.
        max_total_bytes: refuse if the selected entries' total size exceeds this many bytes.

    Returns:
        The extracted files and links (not directories), sorted.

    Raises:
        DataError: naming the archive and the entry, for an absolute path, a ``..`` component, a link that leaves
            the target, an entry that passes through a link, a device/fifo entry, a zip bomb, a size over the
            limit, a corrupt archive, or ``members`` that match nothing.
    """
    archive = Path(archive)
    target = Path(target_dir)
    if is_extracted(archive, target, members):
        record = json.loads(extraction_marker(archive, target).read_text(encoding="utf-8"))
        return sorted(target / name for name in record["files"])
    with _open_archive(archive) as (entries, read_member):
        _check_entries(archive, entries, read_member)
        selected = [e for e in entries if members is None or any(fnmatch.fnmatchcase(e.name, p) for p in members)]
        if members is not None and not any(e.kind != "dir" for e in selected):
            raise DataError(f"{archive}: no entry matches extract_members {list(members)}")
        total = sum(e.size for e in selected if e.kind == "file")
        compressed = max(archive.stat().st_size, 1)
        if total > max_total_bytes:
            raise DataError(f"{archive}: expands to {total:,} bytes, over the limit of {max_total_bytes:,}; refused")
        if total > 2**20 and total / compressed > max_ratio:
            raise DataError(
                f"{archive}: expands to {total:,} bytes from {compressed:,} (ratio {total / compressed:.0f} > "
                f"{max_ratio:g}): refused as a likely zip bomb"
            )
        extraction_marker(archive, target).unlink(missing_ok=True)  # a stale marker must not survive a redo
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.extracting-", dir=target.parent))
        try:
            written = _extract_into(archive, selected, read_member, staging, max_total_bytes)
            _move_tree(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    files = sorted(written)
    write_json(extraction_marker(archive, target), {
        "archive": archive.name, "archive_size": archive.stat().st_size,
        "members": list(members) if members is not None else None, "files": files,
    })
    return [target / name for name in files]


@contextmanager
def _open_archive(archive: Path) -> Iterator[tuple[list[_Entry], Any]]:
    """Yield (entries, read_member) where ``read_member(entry)`` opens a binary stream of a file entry.

    Only opening and listing are translated to "corrupt archive" here; errors while extracting are reported
    per entry by the caller.
    """
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    handle: zipfile.ZipFile | tarfile.TarFile
    try:
        if zipfile.is_zipfile(archive):
            handle = zipfile.ZipFile(archive)
            entries = [_zip_entry(archive, info) for info in handle.infolist()]
        elif tarfile.is_tarfile(archive):
            handle = tarfile.open(archive, "r:*")
            entries = [_tar_entry(archive, info) for info in handle.getmembers()]
        else:
            raise DataError(f"{archive}: neither a zip nor a tar archive; delete it and download it again")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({exc}); delete it and download it again") from exc
    members_by_name = {entry.name: entry.member for entry in entries}

    def read_member(entry: _Entry) -> IO[bytes]:
        if isinstance(handle, zipfile.ZipFile):
            return handle.open(entry.member)
        # a tar hard link reads the data of the regular file it names
        stream = handle.extractfile(entry.member if entry.link is None else members_by_name[entry.link])
        if stream is None:
            raise DataError(f"{archive}: entry {entry.name!r} has no data")
        return stream

    with handle:
        yield entries, read_member


def _safe_name(archive: Path, raw: str, what: str = "entry") -> str:
    """Normalise an entry name to a relative POSIX path; refuse absolute paths and ``..`` components."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DataError(f"{archive}: {what} {raw!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{archive}: {what} {raw!r} contains a '..' component; refused")
    if not parts:
        raise DataError(f"{archive}: {what} {raw!r} has an empty name; refused")
    return "/".join(parts)


def _zip_entry(archive: Path, info: zipfile.ZipInfo) -> _Entry:
    name = _safe_name(archive, info.filename)
    mode = info.external_attr >> 16
    file_type = stat.S_IFMT(mode)
    if info.is_dir():
        return _Entry(name, "dir", 0, None, info)
    if file_type == stat.S_IFLNK:
        return _Entry(name, "symlink", 0, None, info)  # target read in _check_entries (it is the entry's data)
    if file_type not in (0, stat.S_IFREG):
        raise DataError(f"{archive}: entry {info.filename!r} is a special file (mode {oct(mode)}); refused")
    return _Entry(name, "file", info.file_size, None, info)


def _tar_entry(archive: Path, info: tarfile.TarInfo) -> _Entry:
    name = _safe_name(archive, info.name)
    if info.isdir():
        return _Entry(name, "dir", 0, None, info)
    if info.isreg():
        return _Entry(name, "file", info.size, None, info)
    if info.issym():
        return _Entry(name, "symlink", 0, info.linkname, info)
    if info.islnk():
        target = _safe_name(archive, info.linkname, f"hard link {info.name!r} ->")
        return _Entry(name, "file", 0, target, info)  # size filled from its target in _check_entries
    raise DataError(f"{archive}: entry {info.name!r} is a device, fifo or other special file; refused")


def _check_entries(archive: Path, entries: list[_Entry], read_member: Any) -> None:
    """Whole-archive checks: links stay inside, nothing passes through a link, hard links point back.

    Completes ``entries`` in place: a zip symlink's target (stored as its data), a tar hard link's size.
    """
    by_name: dict[str, _Entry] = {}
    for index, entry in enumerate(entries):
        if entry.kind == "symlink" and entry.link is None:
            with read_member(entry) as stream:
                link = stream.read(4096).decode("utf-8", "replace")
            entries[index] = entry = _Entry(entry.name, "symlink", 0, link, entry.member)
        if entry.kind == "file" and entry.link is not None:  # tar hard link: must name an earlier regular file
            source = by_name.get(entry.link)
            if source is None or source.kind != "file":
                raise DataError(f"{archive}: hard link {entry.name!r} -> {entry.link!r} does not point to an "
                                f"earlier file of the archive; refused")
            entries[index] = entry = _Entry(entry.name, "file", source.size,
                                            source.link or source.name, entry.member)
        by_name[entry.name] = entry
    links = {e.name for e in entries if e.kind == "symlink"}
    for entry in entries:
        if entry.kind == "symlink":
            link = entry.link or ""
            if link.startswith("/") or re.match(r"^[A-Za-z]:", link) or not link:
                raise DataError(f"{archive}: symlink {entry.name!r} -> {link!r} points outside the target; refused")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.name), link))
            if resolved == ".." or resolved.startswith("../"):
                raise DataError(f"{archive}: symlink {entry.name!r} -> {link!r} points outside the target; refused")
        parents = entry.name.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            if "/".join(parents[:depth]) in links:
                raise DataError(f"{archive}: entry {entry.name!r} passes through the symlink "
                                f"{'/'.join(parents[:depth])!r}; refused")


def _inside(path: Path, root: Path) -> bool:
    return os.path.commonpath([os.path.realpath(path), os.path.realpath(root)]) == os.path.realpath(root)


def _extract_into(
    archive: Path, entries: list[_Entry], read_member: Any, root: Path, max_total_bytes: int
) -> list[str]:
    """Write ``entries`` under ``root`` (the staging folder); returns their names in archive order."""
    written: list[str] = []
    total = 0
    for entry in entries:
        dest = root / entry.name
        if not _inside(dest.parent, root):
            raise DataError(f"{archive}: entry {entry.name!r} would be written outside the target; refused")
        if entry.kind == "dir":
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            if dest.is_dir() and not dest.is_symlink():
                raise DataError(f"{archive}: entry {entry.name!r} collides with a folder of the archive")
            dest.unlink()
        if entry.kind == "symlink":
            os.symlink(entry.link, dest)
            written.append(entry.name)
            continue
        try:
            with read_member(entry) as src, open(dest, "wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    total += len(chunk)
                    if total > max_total_bytes:  # declared sizes can lie; count what is actually written
                        raise DataError(
                            f"{archive}: entry {entry.name!r} expands past {max_total_bytes:,} bytes; refused"
                        )
                    out.write(chunk)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{archive}: entry {entry.name!r} is corrupt ({exc}); delete the archive and download "
                            f"it again") from exc
        written.append(entry.name)
    for name in written:  # a chain of links that each look local can still resolve outside: check the result
        path = root / name
        if path.is_symlink() and not _inside(path, root):
            raise DataError(f"{archive}: symlink {name!r} resolves outside the target; refused")
    return written


def _move_tree(source: Path, target: Path) -> None:
    """Move every file and link of ``source`` into ``target`` (merging folders), replacing same-named files."""
    target.mkdir(parents=True, exist_ok=True)
    for folder, dirnames, filenames in os.walk(source):
        rel = Path(folder).relative_to(source)
        for dirname in list(dirnames):
            src = Path(folder) / dirname
            if src.is_symlink():  # os.walk lists links to folders among dirnames; move them as links
                dirnames.remove(dirname)
                filenames.append(dirname)
            else:
                dst = target / rel / dirname
                if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
                    dst.unlink()
                dst.mkdir(exist_ok=True)
        for filename in filenames:
            dst = target / rel / filename
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            os.replace(Path(folder) / filename, dst)
