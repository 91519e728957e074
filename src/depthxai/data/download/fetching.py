"""Fetching one file: from ``dest`` itself, a mirror folder, or the network (HTTP with resume, Google Drive).

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

What "verifies" means (sizes, hashes, the ``.sha256`` record of an unpinned download) is
:mod:`depthxai.data.download.verify`.
"""

from __future__ import annotations

import http.client
import inspect
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from depthxai.data.download.verify import (
    CHUNK_BYTES,
    Expected,
    _mismatches,
    _new_hashers,
    _normalise_hash,
    _read_sidecar,
    _record_unpinned,
    _verify,
)
from depthxai.errors import DownloadError
from depthxai.fileio import atomic_path

log = logging.getLogger(__name__)

MIRROR_ENV = "DEPTHXAI_MIRROR"
USER_AGENT = "depthxai-downloader/0.1 (+https://pypi.org/project/depthxai)"
# A transfer that breaks off is resumed with a Range request this many times within one attempt.
MAX_RESUMES = 3


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
    problems = []
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
