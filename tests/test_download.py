"""Downloads (resume, verification, HTML, offline, mirror, Google Drive) and safe archive extraction.

The network is a real HTTP server on 127.0.0.1 in a thread; the mirror is ../shared/mirror.
"""

from __future__ import annotations

import collections
import hashlib
import io
import logging
import os
import socket
import stat
import sys
import tarfile
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from depthxai.data.download import (
    MIRROR_ENV,
    check_spec,
    extract,
    extraction_marker,
    fetch,
    fetch_resource,
    file_digests,
    is_extracted,
)
from depthxai.data.kitti import eigen_drives, read_eigen_split
from depthxai.errors import ConfigError, DataError, DownloadError

REPO = Path(__file__).resolve().parents[1]
BODY = np.random.default_rng(0).bytes(300_000)
BODY_SHA = hashlib.sha256(BODY).hexdigest()


# ------------------------------------------------------------------------------------------- test server


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, mode)``; modes: normal, truncate_once, ignore_range, html, sniff_html."""

    timeout = 10

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path not in server.routes:
            self.send_error(404)
            return
        body, mode = server.routes[self.path]
        if mode == "html":
            page = b"<!DOCTYPE html><html><body>Google Drive can't scan this file for viruses.</body></html>"
            self._send(200, page, {"Content-Type": "text/html; charset=utf-8"})
            return
        if mode == "sniff_html":
            self._send(200, b"\n  <html><head><title>Sign in</title></head></html>", {})
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and mode != "ignore_range":
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            payload = body[start:]
            self._send(206, payload, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
            return
        if mode == "truncate_once" and not server.truncated.get(self.path):
            server.truncated[self.path] = True
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))  # promise everything, deliver a third
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, body, {})

    def _send(self, code: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(code)
        headers.setdefault("Content-Type", "application/octet-stream")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.requests, httpd.truncated = {}, [], {}
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on a local port that nothing listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)


# ---------------------------------------------------------------------------------------------- network


def test_truncated_transfer_is_resumed_with_range(server, tmp_path):
    server.routes["/f.bin"] = (BODY, "truncate_once")
    dest = fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=BODY_SHA, size=len(BODY), progress=False)
    assert dest.read_bytes() == BODY
    assert server.requests == [("/f.bin", None), ("/f.bin", f"bytes={len(BODY) // 3}-")]
    assert not (tmp_path / "f.bin.part").exists()


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    server.routes["/f.bin"] = (BODY, "normal")
    (tmp_path / "f.bin.part").write_bytes(BODY[:123_456])
    fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=BODY_SHA, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert server.requests == [("/f.bin", "bytes=123456-")]


def test_server_that_ignores_range_restarts_from_scratch(server, tmp_path):
    server.routes["/f.bin"] = (BODY, "ignore_range")
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes of another version" * 10)
    fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=BODY_SHA, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BODY  # appending would have kept the stale prefix
    assert server.requests == [("/f.bin", "bytes=300-")]


def test_hash_mismatch_refetches_once_then_names_url_and_hashes(server, tmp_path):
    wrong = BODY[::-1]
    server.routes["/f.bin"] = (wrong, "normal")
    url = f"{server.url}/f.bin"
    with pytest.raises(DownloadError) as info:
        fetch(url, tmp_path / "f.bin", sha256=BODY_SHA, progress=False)
    message = str(info.value)
    assert url in message and BODY_SHA in message and hashlib.sha256(wrong).hexdigest() in message
    assert str(tmp_path / "f.bin") in message
    assert len(server.requests) == 2 and all(rng is None for _, rng in server.requests)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_size_mismatch_is_reported(server, tmp_path):
    server.routes["/f.bin"] = (BODY, "normal")
    with pytest.raises(DownloadError, match=r"size: expected 300,001 bytes, got 300,000"):
        fetch(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(BODY) + 1, retries=0, progress=False)


@pytest.mark.parametrize("mode", ["html", "sniff_html"])
def test_html_answer_is_detected(server, tmp_path, mode):
    server.routes["/model.pt"] = (BODY, mode)
    with pytest.raises(DownloadError, match="HTML page instead of the file") as info:
        fetch(f"{server.url}/model.pt", tmp_path / "model.pt", sha256=BODY_SHA, progress=False)
    assert "virus" in str(info.value)
    assert len(server.requests) == 1  # an HTML answer is not retried
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404") as info:
        fetch(f"{server.url}/missing.bin", tmp_path / "missing.bin", progress=False)
    assert str(tmp_path / "missing.bin") in str(info.value)


def test_offline_without_mirror_says_what_to_place_where(closed_port_url, tmp_path):
    url = f"{closed_port_url}/splits.mat"
    dest = tmp_path / "res" / "splits.mat"
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, sha256=BODY_SHA, size=2626, timeout=5, progress=False)
    message = str(info.value)
    for needle in (url, str(dest), BODY_SHA, "2,626 bytes", MIRROR_ENV, "cannot reach the server"):
        assert needle in message
    assert not dest.exists()


def test_existing_verified_file_needs_no_network(closed_port_url, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(BODY)
    assert fetch(f"{closed_port_url}/f.bin", dest, sha256=BODY_SHA, progress=False) == dest


def test_existing_corrupt_file_is_fetched_again(server, tmp_path):
    server.routes["/f.bin"] = (BODY, "normal")
    dest = tmp_path / "f.bin"
    dest.write_bytes(BODY[:-1] + b"\0")
    fetch(f"{server.url}/f.bin", dest, sha256=BODY_SHA, progress=False)
    assert dest.read_bytes() == BODY and len(server.requests) == 1


def test_unpinned_download_warns_and_records_sha256(server, tmp_path, caplog):
    server.routes["/f.bin"] = (BODY, "normal")
    dest = tmp_path / "f.bin"
    with caplog.at_level(logging.WARNING, logger="depthxai.data.download"):
        fetch(f"{server.url}/f.bin", dest, progress=False)
    assert "UNVERIFIED DOWNLOAD" in caplog.text and BODY_SHA in caplog.text
    assert (tmp_path / "f.bin.sha256").read_text() == f"{BODY_SHA}  f.bin\n"
    # the record is then used: a corrupted copy is detected and replaced
    dest.write_bytes(b"x" * len(BODY))
    fetch(f"{server.url}/f.bin", dest, progress=False)
    assert dest.read_bytes() == BODY and len(server.requests) == 2


# ----------------------------------------------------------------------------------------------- mirror


def _manifest(shared_dir: Path) -> list[dict[str, str]]:
    lines = (shared_dir / "mirror" / "MANIFEST.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]


def test_mirror_copy_is_verified_and_needs_no_network(shared_dir, closed_port_url, tmp_path, monkeypatch):
    mirror = shared_dir / "mirror"
    for row in _manifest(shared_dir):
        # the URL's host is unreachable: only the mirror can supply the file
        url = f"{closed_port_url}/{row['file']}"
        dest = fetch(url, tmp_path / row["file"], sha256=row["sha256"], size=int(row["bytes"]), mirror=mirror,
                     progress=False)
        data = dest.read_bytes()
        assert len(data) == int(row["bytes"]) and hashlib.sha256(data).hexdigest() == row["sha256"]
    # the environment variable works too, and the argument wins over it
    row = _manifest(shared_dir)[0]
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    fetch(f"{closed_port_url}/x", tmp_path / "env" / row["file"], sha256=row["sha256"], progress=False)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "env"))  # holds the file too, but is not used
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    with pytest.raises(DownloadError, match="cannot reach"):
        fetch(f"{closed_port_url}/x", tmp_path / "arg" / row["file"], sha256=row["sha256"], mirror=empty,
              timeout=5, progress=False)


def test_corrupt_mirror_copy_is_refused(shared_dir, closed_port_url, tmp_path):
    row = next(r for r in _manifest(shared_dir) if r["file"] == "splits.mat")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = bytearray((shared_dir / "mirror" / "splits.mat").read_bytes())
    data[1000] ^= 0xFF
    (mirror / "splits.mat").write_bytes(bytes(data))
    dest = tmp_path / "res" / "splits.mat"
    with pytest.raises(DownloadError) as info:
        fetch(f"{closed_port_url}/splits.mat", dest, sha256=row["sha256"], mirror=mirror, progress=False)
    message = str(info.value)
    assert str(mirror / "splits.mat") in message and row["sha256"] in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert not dest.exists() and [p.name for p in dest.parent.iterdir()] == []


def test_git_blob_ids_match_git(shared_dir):
    # blob ids of models/build_model_best_*_xxs in the official METER tree (git ls-tree), i.e. what git computes
    blobs = {"build_model_best_nyu_xxs": "97a1447e4a6b17574a168704499224c18215a517",
             "build_model_best_kitti_xxs": "84aa65101c3bfc1d3ca1be20903c7b01c668adfc"}
    for name, blob in blobs.items():
        path = shared_dir / "mirror" / name
        data = path.read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob
        assert file_digests(path, ["git_sha1"])["git_sha1"] == blob
        # dest exists and verifies by its blob id: returned without network (port 9 is never contacted)
        assert fetch(f"http://127.0.0.1:9/{name}", path, git_sha1=blob, progress=False) == path


def test_git_blob_mismatch_is_refused(shared_dir, closed_port_url, tmp_path):
    with pytest.raises(DownloadError, match="git_sha1: expected 0{40}"):
        fetch(f"{closed_port_url}/x", tmp_path / "build_model_best_nyu_xxs", git_sha1="0" * 40,
              mirror=shared_dir / "mirror", progress=False)


# ------------------------------------------------------------------------------------------ Google Drive


def test_gdrive_without_gdown_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gdown", None)  # makes `import gdown` raise ImportError
    dest = tmp_path / "pixelformer_large07_nyu.pt"
    with pytest.raises(DownloadError) as info:
        fetch("gdrive://folders/FOLDER/nyu.pt", dest, progress=False)
    assert "pip install gdown" in str(info.value) and str(dest) in str(info.value)


def test_gdrive_folder_lookup_uses_gdown(monkeypatch, tmp_path, caplog):
    # A stand-in for gdown's API (download_folder(skip_download=True) lists (id, path, local_path); download()
    # writes the file): checks our side of the contract, not Google Drive.
    entry = collections.namedtuple("GoogleDriveFileToDownload", ("id", "path", "local_path"))
    calls = []
    fake = types.ModuleType("gdown")

    def download_folder(*, id, skip_download, quiet):
        calls.append(("folder", id, skip_download))
        return [entry("ID_KITTI", "kitti.pt", "x"), entry("ID_NYU", "nyu.pth", "y")]

    def download(*, id, output, quiet, resume, timeout=None):
        calls.append(("file", id, Path(output).name, resume))
        Path(output).write_bytes(BODY if id == "ID_NYU" else b"other")
        return output

    fake.download_folder, fake.download = download_folder, download
    monkeypatch.setitem(sys.modules, "gdown", fake)
    dest = fetch("gdrive://folders/FOLDER/nyu.pt", tmp_path / "nyu.pt", sha256=BODY_SHA, progress=False)
    assert dest.read_bytes() == BODY
    # nyu.pt is not listed, nyu.pth is the unique same-stem file
    assert calls == [("folder", "FOLDER", True), ("file", "ID_NYU", "nyu.pt.part", True)]
    with caplog.at_level(logging.WARNING):
        fetch("gdrive://ID_KITTI", tmp_path / "kitti.pt", progress=False)
    assert "UNVERIFIED" in caplog.text
    with pytest.raises(DownloadError, match="no unique file named 'missing.pt'"):
        fetch("gdrive://folders/FOLDER/missing.pt", tmp_path / "missing.pt", progress=False)


# ------------------------------------------------------------------------------------ config / resources


def test_paper_downloads_config(shared_dir):
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    downloads = config["downloads"]
    for key, spec in downloads.items():
        check_spec(spec, f"downloads.{key}")
    by_file = {spec["filename"]: spec for spec in downloads.values()}
    assert len(by_file) == len(downloads)  # one file name per entry: the mirror looks files up by name
    for row in _manifest(shared_dir):
        spec = by_file[row["file"]]
        assert (spec["url"], spec["size"], spec["sha256"]) == (row["url"], int(row["bytes"]), row["sha256"])
    nyu = downloads["nyu_labeled"]
    assert (nyu["size"], nyu["md5"]) == (2_972_037_809, "520609c519fba3ba5ac58c8fefcc3530")
    lines = read_eigen_split(shared_dir / "mirror" / "eigen_test_files_with_gt.txt")
    drives = eigen_drives(entry for entry in lines if entry.gt is not None)
    assert len(drives) == 28
    raw_keys = sorted(k for k in downloads if k.startswith("kitti_raw_"))
    assert raw_keys == [f"kitti_raw_{d}" for d in drives]
    for drive in drives:
        spec = downloads[f"kitti_raw_{drive}"]
        assert spec["url"] == f"https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/{drive}/{drive}_sync.zip"
        assert spec["extract_dir"] == "kitti_raw"
    # the explainer's KITTI train drives (datasets.kitti.train), same URL pattern and raw root as the test drives
    train_drives = config["datasets"]["kitti"]["train"]["drives"]
    train_keys = sorted(k for k in downloads if k.startswith("kitti_train_raw_"))
    assert train_keys == sorted(f"kitti_train_raw_{d}" for d in train_drives) and not set(train_drives) & set(drives)
    for drive in train_drives:
        spec = downloads[f"kitti_train_raw_{drive}"]
        assert spec["url"] == f"https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/{drive}/{drive}_sync.zip"
        assert spec["extract_dir"] == "kitti_raw"
    unpinned = sorted(k for k, s in downloads.items() if not any(s.get(h) for h in ("sha256", "md5", "git_sha1")))
    assert unpinned == sorted(["pixelformer_large07_nyu", "pixelformer_large07_kitti", "kitti_depth_annotated",
                               *raw_keys, *train_keys])


def test_check_spec_names_the_key():
    with pytest.raises(ConfigError, match=r"downloads.x: unknown field\(s\) \['sha1'\]"):
        check_spec({"url": "http://a/b", "filename": "b", "sha1": "0"}, "downloads.x")
    with pytest.raises(ConfigError, match=r"downloads.x.sha256"):
        check_spec({"url": "http://a/b", "filename": "b", "sha256": "abc"}, "downloads.x")
    with pytest.raises(ConfigError, match=r"downloads.x.extract_members"):
        check_spec({"url": "http://a/b", "filename": "b", "extract_members": ["*"]}, "downloads.x")


def test_fetch_resource_file_from_mirror_and_zip_from_server(shared_dir, server, tmp_path):
    row = next(r for r in _manifest(shared_dir) if r["file"] == "eigen_test_files_with_gt.txt")
    spec = {"key": "kitti_eigen_test_split", "url": row["url"], "filename": row["file"], "size": int(row["bytes"]),
            "sha256": row["sha256"], "kind": "file"}
    path = fetch_resource(spec, tmp_path / "res", shared_dir / "mirror", progress=False)
    assert path == tmp_path / "res" / row["file"] and hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("2011_09_26/d_sync/image_02/data/0000000001.png", b"png-1")
        zf.writestr("2011_09_26/d_sync/image_03/data/0000000001.png", b"png-3")
    server.routes["/d_sync.zip"] = (buffer.getvalue(), "normal")
    spec = {"key": "kitti_raw_d", "url": f"{server.url}/d_sync.zip", "filename": "d_sync.zip", "kind": "zip",
            "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(), "extract_dir": "kitti_raw",
            "extract_members": ["2011_09_26/d_sync/image_02/data/*"]}
    target = fetch_resource(spec, tmp_path / "res", progress=False)
    assert target == tmp_path / "res" / "kitti_raw"
    assert (target / "2011_09_26/d_sync/image_02/data/0000000001.png").read_bytes() == b"png-1"
    assert not (target / "2011_09_26/d_sync/image_03").exists()
    assert extraction_marker(tmp_path / "res" / "d_sync.zip", target).is_file()
    fetch_resource(spec, tmp_path / "res", progress=False)
    assert len(server.requests) == 1  # second call: file verified on disk, extraction marker found


# ------------------------------------------------------------------------------------------- extraction


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _zip(path: Path, entries: list[tuple[str, bytes, int | None]]) -> Path:
    """entries: (name, data, unix mode or None)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def _tar(path: Path, entries: list[tuple[str, bytes, bytes, str]]) -> Path:
    """entries: (name, data, type, linkname)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data, kind, linkname in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, linkname
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


_LINK = stat.S_IFLNK | 0o777
UNSAFE_ZIPS = {
    "dotdot": ([("ok.txt", b"fine", None), ("../evil", b"x", None)], "'..' component"),
    "absolute": ([("/abs/depthxai_evil", b"x", None)], "absolute path"),
    "symlink_to_etc": ([("link", b"/etc", _LINK), ("link/depthxai_evil", b"x", None)], "points outside"),
    "symlink_up": ([("a/link", b"../../outside", _LINK)], "points outside"),
    "through_symlink": ([("sub/keep.txt", b"k", None), ("inner", b"sub", _LINK), ("inner/evil", b"x", None)],
                        "passes through the symlink 'inner'"),
    "device": ([("dev", b"", stat.S_IFCHR | 0o600)], "special file"),
}
UNSAFE_TARS = {
    "dotdot": ([("ok.txt", b"fine", tarfile.REGTYPE, ""), ("../evil", b"x", tarfile.REGTYPE, "")], "'..' component"),
    "absolute": ([("/abs/depthxai_evil", b"x", tarfile.REGTYPE, "")], "absolute path"),
    "symlink_to_etc": ([("link", b"", tarfile.SYMTYPE, "/etc"), ("link/depthxai_evil", b"x", tarfile.REGTYPE, "")],
                       "points outside"),
    "symlink_chain": ([("d/up", b"", tarfile.SYMTYPE, ".."), ("d/up2", b"", tarfile.SYMTYPE, "up/..")],
                      "points outside|resolves outside"),
    "hardlink_out": ([("passwd", b"", tarfile.LNKTYPE, "/etc/passwd")], "absolute path"),
    "hardlink_up": ([("passwd", b"", tarfile.LNKTYPE, "../../etc/passwd")], "'..' component"),
    "device": ([("dev", b"", tarfile.CHRTYPE, "")], "device"),
}


def _assert_refused(tmp_path: Path, archive: Path, pattern: str) -> None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    before = _tree(tmp_path)
    with pytest.raises(DataError, match=pattern) as info:
        extract(archive, work / "out")
    assert str(archive) in str(info.value)
    assert _tree(tmp_path) == before  # nothing written anywhere, not even the target or a staging folder
    assert not Path("/abs/depthxai_evil").exists() and not Path("/etc/depthxai_evil").exists()


@pytest.mark.parametrize("case", sorted(UNSAFE_ZIPS))
def test_unsafe_zip_is_refused(tmp_path, case):
    entries, pattern = UNSAFE_ZIPS[case]
    _assert_refused(tmp_path, _zip(tmp_path / f"{case}.zip", entries), pattern)


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_unsafe_tar_is_refused(tmp_path, case):
    entries, pattern = UNSAFE_TARS[case]
    _assert_refused(tmp_path, _tar(tmp_path / f"{case}.tar.gz", entries), pattern)


def test_zip_bomb_and_size_limit_are_refused(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(30 * 2**20), None)])
    assert bomb.stat().st_size < 100_000  # ratio ~1000
    _assert_refused(tmp_path, bomb, "likely zip bomb")
    small = _zip(tmp_path / "small.zip", [("a.txt", b"0123456789" * 10, None)])
    work = tmp_path / "work"
    with pytest.raises(DataError, match="over the limit of 50"):
        extract(small, work / "out", max_total_bytes=50)
    assert not (work / "out").exists()


def test_corrupt_entry_leaves_nothing_that_looks_complete(tmp_path):
    archive = tmp_path / "broken.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"A" * 1000)
        zf.writestr("b.txt", b"B" * 1000)
    data = bytearray(archive.read_bytes())
    data[data.index(b"B" * 1000) + 10] ^= 0xFF  # breaks b.txt's CRC
    archive.write_bytes(bytes(data))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataError, match="entry 'b.txt' is corrupt"):
        extract(archive, work / "out")
    assert _tree(work) == []  # no target, no marker, no staging folder
    assert not is_extracted(archive, work / "out")


def test_safe_archives_extract_merge_and_skip_when_complete(tmp_path):
    zip_path = _zip(tmp_path / "one.zip", [("2011/a/x.txt", b"x1", None), ("2011/a/y.txt", b"y1", None),
                                          ("other/z.txt", b"z", None)])
    tar_path = _tar(tmp_path / "two.tar.gz", [("2011/b/x.txt", b"x2", tarfile.REGTYPE, ""),
                                              ("2011/b/same", b"", tarfile.LNKTYPE, "2011/b/x.txt"),
                                              ("2011/b/alias", b"", tarfile.SYMTYPE, "x.txt")])
    target = tmp_path / "work" / "out"
    first = extract(zip_path, target, members=["2011/*"])
    second = extract(tar_path, target)
    assert first == [target / "2011/a/x.txt", target / "2011/a/y.txt"]
    assert second == [target / "2011/b/alias", target / "2011/b/same", target / "2011/b/x.txt"]
    assert (target / "2011/a/x.txt").read_bytes() == b"x1" and (target / "2011/b/same").read_bytes() == b"x2"
    assert os.readlink(target / "2011/b/alias") == "x.txt" and (target / "2011/b/alias").read_bytes() == b"x2"
    assert not (target / "other").exists()
    assert sorted(p.name for p in tmp_path.joinpath("work").iterdir()) == ["out"]  # staging folders removed
    assert is_extracted(zip_path, target, ["2011/*"]) and not is_extracted(zip_path, target, None)
    (target / "2011/a/x.txt").write_bytes(b"edited")
    assert extract(zip_path, target, members=["2011/*"]) == first  # marker found: not extracted again
    assert (target / "2011/a/x.txt").read_bytes() == b"edited"
    (target / "2011/a/y.txt").unlink()  # a listed file is gone: extract again
    extract(zip_path, target, members=["2011/*"])
    assert (target / "2011/a/y.txt").read_bytes() == b"y1"
    with pytest.raises(DataError, match="no entry matches"):
        extract(zip_path, tmp_path / "work" / "none", members=["nothing/*"])
