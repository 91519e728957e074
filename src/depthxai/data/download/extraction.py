"""Archive extraction that cannot escape its folder, and the markers that say an extraction is complete.

:func:`extract` unpacks zip and tar archives into a temporary folder beside the target, refusing absolute
paths, ``..`` components, links that leave the target, entries that pass through a link, device files and
zip bombs, then moves the result into place and writes a marker (``.<archive name>.complete``) last, so that
an interrupted extraction never looks complete.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from depthxai.data.download.verify import CHUNK_BYTES
from depthxai.errors import DataError
from depthxai.fileio import write_json


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
            assert entry.link is not None  # _check_entries read every symlink's target
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
