"""Hostile and broken inputs: every one is refused (or skipped) with a message that names the file or config key
and says what to do; the CLI exits with status 2 and one line, without a traceback, and writes no output.

Covered here: configs through ``snakemake -n`` (the library level is tests/test_config.py); images and depth maps
through ``depthxai predict-split`` / ``evaluate`` on a tiny prepared dataset written by the tests; checkpoints
(truncated, wrong model, pickles that would run code); and the archive cases tests/test_download.py does not
already hold. Downloads (resume, hash mismatch, HTML answers) are tested in tests/test_download.py.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hostile_fixtures import BROKEN, FRAME, MODEL, damaged_copy, error_line, evaluate_args, predict_args, relink
from PIL import Image

from depthxai.cli import main
from depthxai.data.download import extract
from depthxai.data.io import read_depth, read_rgb, write_depth
from depthxai.errors import CheckpointError, DataError
from depthxai.models import build_model, load_weights, read_state_dict, save_state_dict

# ------------------------------------------------------------------------------------------------ helpers


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, pixels: bytes | None = None) -> bytes:
    """A PNG written by hand, for what Pillow cannot write (16-bit colour) or a header that lies about the size.

    ``pixels``: the raw scanlines without filter bytes (default: none, i.e. a header-only image).
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    stride = width * channels * bit_depth // 8
    raw = b"" if pixels is None else b"".join(b"\0" + pixels[r * stride : (r + 1) * stride] for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image_bytes(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ------------------------------------------------------------------------------------------------ images


def _rgb(data: Path) -> Path:
    return data / "rgb" / f"{BROKEN}.png"


def _depth(data: Path) -> Path:
    return data / "depth" / f"{BROKEN}.png"


def _jpeg_truncated(data: Path) -> None:
    jpeg = data / "rgb" / f"{BROKEN}.jpg"
    jpeg.write_bytes(image_bytes(read_rgb(_rgb(data)), "JPEG"))
    truncate(jpeg)
    relink(data, BROKEN, "rgb", f"rgb/{BROKEN}.jpg")


def _rgb_16bit(data: Path) -> None:
    pixels = (np.random.default_rng(1).integers(0, 65535, (*FRAME, 3))).astype(">u2")
    _rgb(data).write_bytes(png_bytes(FRAME[1], FRAME[0], 16, 2, pixels.tobytes()))


def _depth_float_tiff(data: Path) -> None:
    depth = np.full(FRAME, 2.5, np.float32)
    depth[0, :5] = [np.nan, np.inf, -np.inf, -1.0, 0.0]
    tiff = data / "depth" / f"{BROKEN}.tiff"
    tiff.write_bytes(image_bytes(depth, "TIFF"))
    relink(data, BROKEN, "depth", f"depth/{BROKEN}.tiff")


# (case, damage to the clean dataset, regex the one-line message must match); {rgb} / {depth} are the damaged
# file's path, so every message is checked to name it.
IMAGE_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated PNG", lambda d: truncate(_rgb(d)), r"{rgb}: corrupt or truncated image .*replace the file"),
    ("truncated JPEG", _jpeg_truncated, r"{jpg}: corrupt or truncated image"),
    ("HTML saved as PNG", lambda d: _rgb(d).write_bytes(b"<!DOCTYPE html><html>sign in</html>"),
     r"{rgb}: corrupt or truncated image \(cannot identify image file"),
    ("16-bit RGB PNG", _rgb_16bit, r"{rgb}: expected an 8-bit RGB image, got a 16-bit PNG image .*convert it to 8-bit"),
    ("depth map where an image belongs", lambda d: shutil.copy(_depth(d), _rgb(d)),
     r"{rgb}: expected an 8-bit RGB image, got a 16-bit PNG image of PIL mode 'I;16'"),
    ("pixel bomb header", lambda d: _rgb(d).write_bytes(png_bytes(30000, 30000, 8, 2)),
     r"{rgb}: refused: the image claims more pixels than any dataset frame .*replace the file"),
    ("missing image", lambda d: _rgb(d).unlink(), r"{rgb}: image file not found"),
    ("RGB image where a depth map belongs", lambda d: shutil.copy(_rgb(d), _depth(d)),
     r"{depth}: depth map has 3 channels .*write depth maps with depthxai\.data\.io\.write_depth"),
    ("8-bit depth map", lambda d: _depth(d).write_bytes(image_bytes(np.full(FRAME, 7, np.uint8), "PNG")),
     r"{depth}: depth map is 8-bit; expected 16-bit; write depth maps"),
    ("float TIFF depth with NaN and inf", _depth_float_tiff,
     r"{tiff}: depth map is a TIFF image of PIL mode 'F', not a 16-bit PNG; write depth maps .*value = metres x 1000"),
    ("truncated depth PNG", lambda d: truncate(_depth(d)), r"{depth}: corrupt or truncated depth map"),
    ("depth map of another size", lambda d: write_depth(_depth(d), np.ones((24, 32)), 1000.0),
     r"{depth}: depth map is \(24, 32\), its image.* is \(48, 64\)"),
]


def _expected(pattern: str, data: Path) -> str:
    names = {"rgb": _rgb(data), "depth": _depth(data), "jpg": data / "rgb" / f"{BROKEN}.jpg",
             "tiff": data / "depth" / f"{BROKEN}.tiff"}
    return pattern.format(**{k: re.escape(str(v)) for k, v in names.items()})


@pytest.mark.parametrize(("case", "damage", "pattern"), IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_predict_split_refuses_bad_images(workspace: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], case: str,
                                          damage: Callable[[Path], None], pattern: str) -> None:
    data = damaged_copy(workspace, tmp_path, damage)
    out = tmp_path / "out"
    assert main(predict_args(data, workspace["weights"], out / "pred.npz", out / "acc.csv")) == 2
    line = error_line(capsys)
    assert line.startswith("depthxai predict-split: error: ")
    assert re.search(_expected(pattern, data), line), line
    assert not out.exists() or list(out.iterdir()) == []  # nothing written, not even a temporary file


@pytest.mark.parametrize("case", ["truncated PNG", "float TIFF depth with NaN and inf", "depth map of another size"])
def test_evaluate_refuses_bad_images(workspace: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     case: str) -> None:
    _, damage, pattern = next(c for c in IMAGE_CASES if c[0] == case)
    data = damaged_copy(workspace, tmp_path, damage)
    out = tmp_path / "out"
    assert main(evaluate_args(workspace, data, out)) == 2
    line = error_line(capsys)
    assert line.startswith("depthxai evaluate: error: ") and re.search(_expected(pattern, data), line), line
    assert not out.exists() or list(out.iterdir()) == []


def test_depth_map_without_valid_pixels_is_skipped_by_name(workspace: dict[str, Path], tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """All pixels invalid (0) is legal data, not an error: the accuracy table skips the image, with a warning that
    names the file; the evaluation keeps the prediction-based scores and drops those against the ground truth."""
    data = damaged_copy(workspace, tmp_path, lambda d: write_depth(_depth(d), np.zeros(FRAME), 1000.0))
    assert float(read_depth(_depth(data), 1000.0).max()) == 0.0
    with caplog.at_level("WARNING", logger="depthxai"):
        assert main(predict_args(data, workspace["weights"], tmp_path / "pred.npz", tmp_path / "acc.csv")) == 0
    assert f"{_depth(data)}: no valid ground truth for image {BROKEN}" in caplog.text
    accuracy = pd.read_csv(tmp_path / "acc.csv", dtype={"image_id": str})
    assert set(accuracy["image_id"]) == {"img0"} and len(accuracy) == 9  # the nine metrics of img0 only
    assert main(evaluate_args(workspace, data, tmp_path)) == 0
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"image_id": str})
    per_image = {i: set(g["metric"]) for i, g in scores.groupby("image_id")}
    ground_truth_metrics = {m for m in per_image["img0"] if "_gt_" in m}
    assert ground_truth_metrics == {f"{o}_auc_gt_{c}_change{s}" for o in ("morf", "lerf") for c in ("absrel", "rmse")
                                    for s in ("", "@road")}
    assert per_image[BROKEN] == per_image["img0"] - ground_truth_metrics
    assert np.isfinite(scores["value"]).all()


def test_depth_reader_accepts_exactly_16_bit_png(tmp_path: Path) -> None:
    """The decision on formats: 16-bit single-channel PNG (value / depth_scale metres; 0 invalid); nothing else."""
    depth = np.array([[0.0, 1.5], [65.535, 0.001]])
    write_depth(tmp_path / "d.png", depth, 1000.0)
    np.testing.assert_array_equal(read_depth(tmp_path / "d.png", 1000.0), np.float32([[0, 1.5], [65.535, 0.001]]))
    for name, array, fmt in [("f.tiff", np.ones((2, 2), np.float32), "TIFF"),
                             ("i.tiff", -np.ones((2, 2), np.int32), "TIFF"),
                             ("g.jpg", np.ones((2, 2), np.uint8), "JPEG"), ("b.png", np.ones((2, 2), bool), "PNG")]:
        (tmp_path / name).write_bytes(image_bytes(array, fmt))
        with pytest.raises(DataError, match=f"{tmp_path / name}: depth map (is a|is 1-bit)"):
            read_depth(tmp_path / name, 1000.0)


def test_truncated_stage_outputs_are_refused_by_name(workspace: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A predictions / attributions / mean-colour file cut short or edited by hand: exit 2, naming it and the rule
    to rerun (atomic writes keep a killed job from leaving one, but a copy or a full disk can)."""
    for key, phrase in (("predictions", "unreadable predictions file .*; rerun the predict rule"),
                        ("attributions", "unreadable attribution file .*; rerun the attribute rule"),
                        ("mean_rgb", "not a mean colour file .*; delete it and run the mean_rgb rule again")):
        broken = tmp_path / f"broken_{workspace[key].name}"
        shutil.copy(workspace[key], broken)
        truncate(broken, 0.6)
        assert main(evaluate_args(workspace, workspace["data"], tmp_path / "out", **{key: broken})) == 2, key
        line = error_line(capsys)
        assert re.search(re.escape(f"{broken}: ") + phrase, line), line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ checkpoints


class _Payload:
    """Pickles to a call that creates ``marker``: what a malicious checkpoint would do with a shell instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return (Path.write_text, (self.marker, "the payload ran"))


def malicious_checkpoints(tmp_path: Path, state: dict[str, torch.Tensor]) -> tuple[Path, list[Path]]:
    """A marker path and checkpoints that would create it when unpickled: torch's zip format (.pth), a zip whose
    data.pkl was swapped for the payload, and a legacy bare pickle. Each also holds the real tensors."""
    marker = tmp_path / "PWNED"
    poisoned = dict(state, **{"meta": _Payload(marker)})
    zipped = tmp_path / "evil.pth"
    torch.save(poisoned, zipped)
    swapped = tmp_path / "evil_swapped.pth"  # a genuine checkpoint with only its pickle replaced
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(swapped, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                data = pickle.dumps({"weight": _Payload(marker)}, protocol=2)
            dst.writestr(info, data)
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps(poisoned, protocol=2))
    return marker, [zipped, swapped, legacy]


def test_malicious_pickles_are_refused_and_never_run(workspace: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    state = read_state_dict(workspace["weights"])
    marker, checkpoints = malicious_checkpoints(tmp_path, state)
    # torch's escape hatch must not reopen the hole: it only applies where weights_only is not passed
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    for checkpoint in checkpoints:
        with pytest.raises(CheckpointError, match=f"{checkpoint}: (refused by safe loading|unreadable)") as info:
            read_state_dict(checkpoint)
        assert "Only plain state dicts are accepted" in str(info.value) or "weights_only" in str(info.value)
        out = tmp_path / "out"
        assert main(predict_args(workspace["data"], checkpoint, out / "p.npz", out / "a.csv")) == 2
        line = error_line(capsys)
        assert f"{checkpoint}: refused by safe loading (weights_only=True)" in line, line
        assert not marker.exists(), f"{checkpoint}: the payload ran"
        assert not out.exists()
    # the payloads are live: an unsafe load of each runs it (so the refusals above are what kept them from running)
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    for checkpoint in checkpoints:
        try:
            torch.load(checkpoint, weights_only=False)
        except RuntimeError:  # the legacy loader unpickles everything, then finds no magic number
            pass
        assert marker.read_text() == "the payload ran", checkpoint
        marker.unlink()


def test_truncated_checkpoint_is_refused(workspace: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for keep in (0.5, 0.999, 0.0):
        checkpoint = tmp_path / f"cut_{keep}.pt"
        shutil.copy(workspace["weights"], checkpoint)
        truncate(checkpoint, keep)
        assert main(predict_args(workspace["data"], checkpoint, tmp_path / "p.npz", tmp_path / "a.csv")) == 2
        assert f"{checkpoint}: unreadable or truncated checkpoint" in error_line(capsys)
        assert "download it again" in str(pytest.raises(CheckpointError, read_state_dict, checkpoint).value)
    assert not (tmp_path / "p.npz").exists()


def test_state_dict_of_another_model_loads_nothing(workspace: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    model = build_model(MODEL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # A checkpoint that fits except for three keys: had anything loaded, every tensor would read 0.25.
    state = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v for k, v in before.items()}
    keys = list(state)
    missing, resized = keys[0], next(k for k in keys[1:] if state[k].ndim == 4)
    del state[missing]
    state[resized] = torch.zeros(state[resized].shape[0] + 1, *state[resized].shape[1:])
    state["decoder.extra.weight"] = torch.zeros(3)
    partial = tmp_path / "partial.pt"
    save_state_dict(partial, state)
    with pytest.raises(CheckpointError) as info:
        load_weights(model, partial)
    message = str(info.value)
    assert message.startswith(f"{partial}: does not fit ") and "nothing was loaded" in message
    assert f"1 missing keys: {missing}" in message and "1 unexpected keys: decoder.extra.weight" in message
    assert (f"1 shape mismatches: {resized}: checkpoint {tuple(state[resized].shape)} "
            f"vs model {tuple(before[resized].shape)}") in message
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # not one tensor changed
    # the weights of another variant (METER-XS) through the CLI
    other = tmp_path / "meter_xs.pt"
    save_state_dict(other, build_model("meter_xs_synthindoor").state_dict())
    assert main(predict_args(workspace["data"], other, tmp_path / "p.npz", tmp_path / "a.csv")) == 2
    line = error_line(capsys)
    assert f"{other}: does not fit " in line and "shape mismatches" in line and "architecture and variant" in line


# ------------------------------------------------------------------------------------------------ archives


def _zip_with(path: Path, name: str, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(name), data)
    return path


def _tar_with(path: Path, members: list[tuple[str, bytes, bytes, str]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


# What tests/test_download.py does not hold already (it has '..', absolute paths, symlinks out and through,
# device files, hard links to /etc/passwd and '../..', a zip bomb by ratio and size limits).
ARCHIVE_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("backslash dotdot (Windows zip)", lambda t: _zip_with(t / "a.zip", "..\\..\\evil.txt"), r"'\.\.' component"),
    ("drive letter (Windows zip)", lambda t: _zip_with(t / "a.zip", "C:/Windows/evil.txt"), r"absolute path"),
    ("hard link to a file not in the archive", lambda t: _tar_with(t / "a.tar.gz", [
        ("ok.txt", b"fine", tarfile.REGTYPE, ""), ("passwd", b"", tarfile.LNKTYPE, "etc/passwd")]),
     r"hard link 'passwd' -> 'etc/passwd' does not point to an earlier file"),
    ("hard link to a symlink", lambda t: _tar_with(t / "a.tar", [
        ("ok.txt", b"fine", tarfile.REGTYPE, ""), ("alias", b"", tarfile.SYMTYPE, "ok.txt"),
        ("hard", b"", tarfile.LNKTYPE, "alias")], mode="w"), r"does not point to an earlier file"),
    ("gzip bomb in a tar", lambda t: _tar_with(t / "a.tar.gz", [("zeros.bin", bytes(40 * 2**20), tarfile.REGTYPE, "")]),
     r"likely zip bomb"),
]


@pytest.mark.parametrize(("case", "build", "pattern"), ARCHIVE_CASES, ids=[c[0] for c in ARCHIVE_CASES])
def test_more_unsafe_archives_are_refused(tmp_path: Path, case: str, build: Callable[[Path], Path],
                                          pattern: str) -> None:
    archive = build(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(DataError, match=pattern) as info:
        extract(archive, tmp_path / "out")
    assert str(info.value).startswith(f"{archive}: ")
    assert sorted(tmp_path.rglob("*")) == before  # no target folder, no staging folder, nothing anywhere


# ------------------------------------------------------------------------------------------------ configs

BAD_CONFIGS: list[tuple[str, Callable[[dict], None], str]] = [
    ("unknown key", lambda c: c.update(seeds=3), r"config key seeds: unknown key \(allowed here: .*\); see "),
    ("wrong type", lambda c: c.update(threads="two"), r"config key threads: 'two' is not of type 'integer'"),
    ("out of range", lambda c: c["evaluation"].update(fractions=[0.0, 1.5]),
     r"config key evaluation\.fractions\.1: 1\.5 is greater than the maximum of 1"),
    ("negative seed", lambda c: c.update(seed=-1), r"config key seed: -1 is less than the minimum of 0"),
    ("empty list", lambda c: c["report"].update(formats=[]), r"config key report\.formats: \[\] should be non-empty"),
    ("empty mapping", lambda c: c.update(methods={}), r"config key methods: \{\} should be non-empty"),
]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory, copy_checkout: Callable[[Path], Path]) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


@pytest.mark.slow
@pytest.mark.parametrize(("case", "change", "pattern"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_snakemake_refuses_bad_configs_before_any_job(checkout: Path, case: str, change: Callable[[dict], None],
                                                      pattern: str, repo_root: Path) -> None:
    config = yaml.safe_load((repo_root / "tests" / "data" / "tiny_config.yaml").read_text())
    change(config)
    (checkout / "bad.yaml").write_text(yaml.safe_dump(config))
    # a dry run (-n) for most cases; one real run proves that nothing is created either
    dry = ["-n"] if case != "unknown key" else []
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *dry, "--configfile", "bad.yaml"],
                          cwd=checkout, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert re.search("invalid configuration: " + pattern, output), output
    assert "Job stats" not in output and "jobid" not in output  # no job was planned, let alone run
    for folder in ("results", "logs", "resources"):
        assert not (checkout / folder).exists(), folder


@pytest.mark.slow
def test_cli_error_is_one_line_without_traceback(workspace: dict[str, Path], tmp_path: Path, repo_root: Path) -> None:
    """The same refusals seen from outside: a fresh process, exit status 2, a one-line message on stderr."""
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(workspace["weights"].read_bytes()[:1000])
    done = subprocess.run([sys.executable, "-m", "depthxai", *predict_args(workspace["data"], truncated,
                                                                           tmp_path / "p.npz", tmp_path / "a.csv")],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(repo_root / "src")})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"depthxai predict-split: error: {truncated}: unreadable or truncated checkpoint (")
    assert lines[0].endswith("); download it again")
    assert done.stdout == "" and not (tmp_path / "p.npz").exists()
