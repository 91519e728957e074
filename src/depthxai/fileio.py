"""Atomic file writing: a crash never leaves a file that looks complete.

Every writer in the package goes through :func:`atomic_path`: it yields a temporary path in the
destination's folder and renames it over the destination only when the block finished without error.

Per-image stage outputs (predictions, attribution maps) are streamed: :class:`NpzStreamWriter` puts each image's
array into the ``.npz`` zip as soon as it is computed, under ``<name>/<image id>``, so a stage never holds a
whole shard in memory; :class:`NpzRows` reads them back one image at a time (a member of an ``.npz`` is only
read when asked for).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from depthxai.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success, delete it on error.

    ``suffix`` defaults to the destination's own suffix, so that libraries which choose a format from the
    extension (PIL, matplotlib, numpy) write the right one. A process killed mid-write (SIGKILL, out of memory,
    a cluster's time limit) cannot delete its temporary file; the next write of the same destination does.
    The file gets the usual permissions (0666 less the umask), not the owner-only ones of a temporary file.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_suffix = ".tmp" + (dest.suffix if suffix is None else suffix)
    _remove_stale_temporaries(dest, tmp_suffix)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=tmp_suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None or str(exc.filename) == str(tmp):  # a full disk names no file: name the destination
            raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(dest: Path, tmp_suffix: str) -> None:
    """Delete what a killed :func:`atomic_path` left for ``dest`` (only one job writes a destination at a time)."""
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.[a-z0-9_]{{8}}{re.escape(tmp_suffix)}")
    for leftover in dest.parent.glob(f".{glob.escape(dest.name)}.*{glob.escape(tmp_suffix)}"):
        if pattern.fullmatch(leftover.name):
            leftover.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (sorted keys keep reruns byte-identical).

    Strict JSON: a NaN or infinity is refused (``json`` would write the bare ``NaN``, which no JSON parser but
    Python's reads), naming the file and the key; a value that is legitimately undefined is written as ``null``
    by its producer.

    Raises:
        DataError: ``obj`` holds a non-finite number.
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    except ValueError:
        raise DataError(f"{path}: refusing to write the non-finite number at {_non_finite_key(obj)} into a JSON "
                        "file") from None
    write_text(path, text + "\n")


def _non_finite_key(obj: Any, path: str = "") -> str:
    """The dotted key of the first NaN or infinity in ``obj`` (``"?"`` if none is found)."""
    if isinstance(obj, Mapping):
        items: Any = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        value = _json_default(obj) if isinstance(obj, (np.generic, np.ndarray)) else obj
        if isinstance(value, list):
            return _non_finite_key(value, path)
        return path or "<top level>" if isinstance(value, float) and not np.isfinite(value) else ""
    for key, value in items:
        found = _non_finite_key(value, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return "" if path else "?"


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file: the same resolved path, or (existing) the same inode (a hard link,
    a symbolic link, another spelling)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_paths(inputs: Sequence[Path], files: Sequence[tuple[str, Path]],
                folders: Sequence[tuple[str, Path]] = ()) -> None:
    """Refuse, before any work, a command whose outputs would destroy an input or cannot be written.

    Args:
        inputs: the paths the command reads.
        files: ``(label, path)`` of each output file (the label names the option, e.g. ``--out``).
        folders: ``(label, path)`` of each output folder.

    Raises:
        DataError: naming both paths where an output is an input (same path or inode), an output file would replace
            a file inside an input folder, an input lies inside an output folder, or an output is a folder where a
            file is due (or the reverse); naming the path where an input is a FIFO, device or socket (reading it
            would block or never end), or where the output's folder cannot be written (a probe file is created and
            deleted in the nearest existing folder).
    """
    for path in inputs:
        if path.exists() and not (path.is_file() or path.is_dir()):
            raise DataError(f"{path}: not a regular file or folder (a FIFO, device or socket); give a file")
    for label, out in files:
        if out.is_dir():
            raise DataError(f"{out} ({label}): is a folder; give the path of the file to write")
        for path in inputs:
            if same_file(out, path):
                raise DataError(f"{out} ({label}) is also an input ({path}); refusing to write over an input")
            if out.exists() and path.is_dir() and _is_within(out, path):
                raise DataError(f"{out} ({label}) would replace a file of the input folder {path}")
        _check_writable(out.parent, f"{out} ({label})")
    for label, out in folders:
        if out.exists() and not out.is_dir():
            raise DataError(f"{out} ({label}): exists and is not a folder")
        for path in inputs:
            if same_file(out, path) or _is_within(path, out):
                raise DataError(f"{out} ({label}) holds the input {path}; write the output elsewhere")
        _check_writable(out, f"{out} ({label})")


def _check_writable(folder: Path, what: str) -> None:
    """Create and delete a probe file in ``folder``, or in its nearest existing ancestor if it does not exist yet."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{what}: {existing} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".depthxai-probe.", dir=existing)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise DataError(f"{what}: cannot write in {existing} ({exc.strerror})") from None


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write one array as ``.npy`` atomically (no pickled objects)."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)


def write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Write arrays to a compressed ``.npz`` atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # a key could be allow_pickle, says mypy


#: Zip member time stamp of streamed .npz files: fixed, so that the same arrays give the same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class NpzStreamWriter:
    """Write an ``.npz`` one array at a time, atomically (a temporary file renamed over ``path`` on success).

    Each :meth:`add` writes its array into the zip at once (nothing is kept in memory), so a stage can stream a
    shard of any size. :func:`numpy.load` reads the result like any ``.npz``. Members are stored uncompressed by
    default: attribution maps are float noise to zlib (10% smaller) and deflating a 192x256 float32 map costs
    ~8 ms, a quarter of a Saliency map's compute.

    Use as a context manager::

        with NpzStreamWriter(path) as out:
            for image_id, depth in ...:
                out.add_row("native", image_id, depth)   # member native/<id>
            out.add("ids", np.asarray(ids))
    """

    def __init__(self, path: str | os.PathLike[str], *, compress: bool = False) -> None:
        self.path = Path(path)
        self.compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        self._stack = contextlib.ExitStack()
        self._zip: zipfile.ZipFile | None = None
        self._names: set[str] = set()

    def __enter__(self) -> NpzStreamWriter:
        tmp = self._stack.enter_context(atomic_path(self.path, suffix=".npz"))
        self._zip = zipfile.ZipFile(tmp, mode="w", compression=self.compression, allowZip64=True)
        # Closed before the rename, inside the atomic write: closing writes the central directory, which can fail
        # too (a full disk), and then the temporary file must go like after any other failure.
        self._stack.callback(self._close)
        return self

    def _close(self) -> None:
        if self._zip is not None:
            archive, self._zip = self._zip, None
            archive.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        return bool(self._stack.__exit__(exc_type, exc, tb))

    def add(self, name: str, array: Any) -> None:
        """Write ``array`` as the member ``name`` (``np.load(path)[name]``); names must be unique."""
        if self._zip is None:
            raise RuntimeError("NpzStreamWriter.add outside its 'with' block")
        if name in self._names:
            raise ValueError(f"{self.path}: {name!r} written twice")
        self._names.add(name)
        info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
        info.compress_type = self.compression
        with self._zip.open(info, mode="w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    def add_row(self, name: str, image_id: str, array: Any) -> None:
        """Write one image's array as ``<name>/<image_id>`` (read back with :class:`NpzRows`)."""
        self.add(row_member(name, image_id), array)


def row_member(name: str, image_id: str) -> str:
    """The ``.npz`` key of one image's array: ``<name>/<image_id>``."""
    return f"{name}/{image_id}"


class NpzRows(Sequence[np.ndarray]):
    """The per-image arrays ``<name>/<id>`` of an open ``.npz``, in the order of ``ids``, loaded on access.

    ``rows[k]`` reads one member; ``rows[a:b]`` stacks a few; ``np.asarray(rows)`` stacks them all (small
    files, tests). A file with one stacked array ``name`` (the layout before streaming) is read the same way.

    Args:
        data: an open ``np.load`` result (kept open while the rows are used).
        name: the array's name.
        ids: the image ids, one per row.
    """

    def __init__(self, data: Any, name: str, ids: Sequence[str]) -> None:
        self._data = data
        self.name = name
        self.ids = [str(i) for i in ids]
        self._legacy = name in data.files  # one stacked array (read whole, on first access)
        self._stacked: np.ndarray | None = None
        if not self._legacy:
            members = set(data.files)
            absent = [i for i in self.ids if row_member(name, i) not in members]
            if absent:
                raise KeyError(f"no {name!r} array for images {absent[:5]}")

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, image_id: str) -> np.ndarray:
        """The array of ``image_id``."""
        if self._legacy:
            if self._stacked is None:
                self._stacked = self._data[self.name]
                if len(self._stacked) != len(self.ids):
                    raise KeyError(f"{self.name!r} has {len(self._stacked)} rows for {len(self.ids)} ids")
            return np.asarray(self._stacked[self.ids.index(image_id)])
        try:
            return np.asarray(self._data[row_member(self.name, image_id)])
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:  # read lazily: corruption shows up here
            source = getattr(getattr(self._data, "zip", None), "filename", None) or "the .npz file"
            raise DataError(f"{source}: the {self.name!r} array of image {image_id!r} is corrupt ({exc}); delete the "
                            "file and rerun the rule that wrote it") from exc

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            chosen = self.ids[index]
            if not chosen:
                raise IndexError(f"empty slice {index} of {self.name!r}")
            return np.stack([self.row(i) for i in chosen])
        return self.row(self.ids[index])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        stacked = np.stack([self.row(i) for i in self.ids]) if self.ids else np.zeros((0,), np.float32)
        return stacked if dtype is None else stacked.astype(dtype)


def read_npz_ids(path: str | os.PathLike[str]) -> list[str]:
    """The ``ids`` array of a shard file, as strings.

    Raises:
        DataError: the file is unreadable or has no ``ids`` array (names the file).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return [str(i) for i in data["ids"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable .npz with an 'ids' array ({exc}); rerun the rule that writes it") from exc


def read_npz_rows(paths: Sequence[str | os.PathLike[str]], ids: Sequence[str], key: str) -> dict[str, np.ndarray]:
    """``{id: array}`` of the per-image arrays ``key`` (``<key>/<id>`` members, or rows of one stacked ``key``
    array) for ``ids``, looked up in shard files in any order; only the wanted images are read.

    Raises:
        DataError: a file is unreadable or lacks ``key``, or an image is in none of the files.
    """
    wanted = set(ids)
    out: dict[str, np.ndarray] = {}
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                file_ids = [str(i) for i in data["ids"]]
                rows = NpzRows(data, key, file_ids)
                out.update({i: rows.row(i) for i in file_ids if i in wanted and i not in out})
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: unreadable .npz or no {key!r} array ({exc}); "
                            "rerun the rule that writes it") from exc
    absent = [i for i in ids if i not in out]
    if absent:
        raise DataError(f"images {absent} are in none of {[str(p) for p in paths]}")
    return out


def write_csv(path: str | os.PathLike[str], table: pd.DataFrame, float_format: str = "%.9g") -> None:
    """Write a table as CSV atomically, with a fixed float format and line ending so reruns are byte-identical."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")


def write_csv_tables(tables: Mapping[str, pd.DataFrame], directory: str | os.PathLike[str]) -> list[Path]:
    """Write every table as ``<directory>/<name>.csv`` (atomic, byte-stable); returns the paths, sorted by name."""
    return [_write_named(Path(directory) / f"{name}.csv", tables[name]) for name in sorted(tables)]


def _write_named(path: Path, table: pd.DataFrame) -> Path:
    write_csv(path, table)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
