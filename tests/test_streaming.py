"""Streamed stage outputs: the incremental .npz writer (atomic, byte-stable, constant memory), the per-image readers,
and the prediction / attribution stages written image by image, read back one image at a time."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from depthxai.attribution import RandomRanking, Saliency, TargetSpec
from depthxai.attribution.run import attribute_split, attribute_to_file, read_attributions, write_attributions
from depthxai.data.io import DatasetInfo, write_dataset_info, write_depth, write_index, write_rgb
from depthxai.errors import DataError
from depthxai.evaluation.perturbation import PerturbationConfig
from depthxai.evaluation.run import EvaluationConfig, evaluate_split
from depthxai.fileio import NpzRows, NpzStreamWriter, read_npz_ids, read_npz_rows
from depthxai.models.predict import predict_split, predict_to_file, read_predictions, write_predictions
from depthxai.models.wrapper import DepthModel

IDS = ["a0", "a1", "b2", "c3"]
FRAME = (20, 24)
INPUT = (16, 20)


def test_stream_writer_round_trip(tmp_path: Path) -> None:
    gen = np.random.default_rng(0)
    rows = {i: gen.standard_normal((3, 4)).astype(np.float32) for i in IDS}
    path = tmp_path / "x.npz"
    with NpzStreamWriter(path) as out:
        for image_id, array in rows.items():
            out.add_row("maps", image_id, array)
        out.add("ids", np.asarray(IDS))
        out.add("meta", np.asarray('{"k": 1}'))
        assert not path.exists()  # nothing at the destination before the end
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(["ids", "meta", *[f"maps/{i}" for i in IDS]])
        assert data["ids"].tolist() == IDS and str(data["meta"]) == '{"k": 1}'
        maps = NpzRows(data, "maps", data["ids"])
        assert len(maps) == 4 and maps.ids == IDS
        for k, image_id in enumerate(IDS):
            assert maps[k].dtype == np.float32
            np.testing.assert_array_equal(maps[k], rows[image_id])
            np.testing.assert_array_equal(maps.row(image_id), rows[image_id])
        np.testing.assert_array_equal(maps[1:3], np.stack([rows["a1"], rows["b2"]]))
        np.testing.assert_array_equal(np.asarray(maps), np.stack(list(rows.values())))
        np.testing.assert_array_equal(maps[-1], rows["c3"])
    # the same arrays give the same bytes (fixed member time stamps)
    again = tmp_path / "y.npz"
    with NpzStreamWriter(again) as out:
        for image_id, array in rows.items():
            out.add_row("maps", image_id, array)
        out.add("ids", np.asarray(IDS))
        out.add("meta", np.asarray('{"k": 1}'))
    assert again.read_bytes() == path.read_bytes()


def test_stream_writer_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "out.npz"
    path.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="boom"):
        with NpzStreamWriter(path) as out:
            out.add_row("maps", "a", np.zeros(3))
            raise RuntimeError("boom")
    assert path.read_bytes() == b"previous"  # the old file stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]  # and no temporary is left behind
    with pytest.raises(ValueError, match="twice"):
        with NpzStreamWriter(path) as out:
            out.add_row("maps", "a", np.zeros(3))
            out.add_row("maps", "a", np.ones(3))
    assert path.read_bytes() == b"previous"
    with pytest.raises(RuntimeError, match="outside"):
        NpzStreamWriter(path).add("x", np.zeros(1))


def test_stream_writer_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    row_bytes = 2 * 2**20
    tracemalloc.start()
    try:
        with NpzStreamWriter(tmp_path / "big.npz") as out:
            for k in range(24):  # 48 MB in all, one 2 MB row alive at a time
                out.add_row("maps", str(k), np.full(row_bytes // 4, k, dtype=np.float32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * row_bytes, peak
    with np.load(tmp_path / "big.npz") as data:
        assert float(data["maps/23"][0]) == 23.0 and data["maps/5"].shape == (row_bytes // 4,)


def test_rows_read_one_member_at_a_time_and_the_stacked_layout(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rows = np.arange(4 * 6, dtype=np.float32).reshape(4, 1, 2, 3)
    write_predictions(tmp_path / "p.npz", {"ids": np.asarray(IDS), "native": rows})
    opened: list[str] = []
    original = np.lib.npyio.NpzFile.__getitem__

    def counting(self: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
        opened.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", counting)
    back = read_predictions(tmp_path / "p.npz")
    assert opened == ["ids"]  # opening reads the ids only
    np.testing.assert_array_equal(back["native"][2], rows[2])
    assert opened == ["ids", "native/b2"]
    np.testing.assert_array_equal(back["native"][2:3], rows[2:3])  # (1, 1, h, w), as the stages index it
    monkeypatch.undo()
    # a file of the layout before streaming (one stacked array) reads the same
    np.savez_compressed(tmp_path / "old.npz", ids=np.asarray(IDS), native=rows)
    old = read_predictions(tmp_path / "old.npz")
    np.testing.assert_array_equal(old["native"][3], rows[3])
    np.testing.assert_array_equal(np.asarray(old["native"]), rows)
    assert read_npz_rows([tmp_path / "old.npz"], ["c3"], "native")["c3"].tolist() == rows[3].tolist()
    # errors name the file
    with np.load(tmp_path / "p.npz") as data:
        with pytest.raises(KeyError, match="maps"):
            NpzRows(data, "maps", IDS)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="bad.npz"):
        read_predictions(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="bad.npz"):
        read_attributions(tmp_path / "bad.npz")


# ---------------------------------------------------------------------------------------------------- stages


#: the stand-in network: one 3x3 conv to a single channel, 2x2 average pool, 1 + softplus (weights from N(0, 1))
TINY = {"input_size": INPUT, "width": 1, "activation": "none", "pool": 2, "body": 0, "head_kernel": None,
        "offset": 1.0, "seed": 0, "init_std": 1.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream_dataset")
    gen = np.random.default_rng(1)
    write_dataset_info(root, DatasetInfo(name="synthindoor", kind="synthetic", depth_scale=1000.0, min_depth=1e-3,
                                         max_depth=10.0, eval_crop="none", image_size=FRAME))
    rows = []
    for image_id in IDS:
        write_rgb(root / "rgb" / f"{image_id}.png", gen.integers(0, 256, (*FRAME, 3), dtype=np.uint8))
        write_depth(root / "depth" / f"{image_id}.png", gen.uniform(1, 4, FRAME), 1000.0)
        rows.append({"id": image_id, "split": "test", "rgb": f"rgb/{image_id}.png", "depth": f"depth/{image_id}.png"})
    write_index(root, pd.DataFrame(rows))
    return root


def test_streamed_stages_equal_the_in_memory_ones(dataset: Path, tmp_path: Path,
                                                  tiny_model: Callable[..., DepthModel]) -> None:
    model = tiny_model(**TINY)
    arrays, metrics = predict_split(model, dataset, IDS, progress=False)
    streamed_metrics = predict_to_file(tmp_path / "pred.npz", model, dataset, IDS, progress=False)
    pd.testing.assert_frame_equal(streamed_metrics, metrics)
    write_predictions(tmp_path / "pred_mem.npz", arrays)
    assert (tmp_path / "pred.npz").read_bytes() == (tmp_path / "pred_mem.npz").read_bytes()
    predictions = read_predictions(tmp_path / "pred.npz")
    assert predictions["ids"].tolist() == IDS
    np.testing.assert_array_equal(np.asarray(predictions["native"]), arrays["native"])

    target = TargetSpec("near", 0.3)
    for method in (Saliency(), RandomRanking()):
        in_memory = attribute_split(model, method, dataset, arrays, target, seed=3, meta={"p": 1}, progress=False)
        n = attribute_to_file(tmp_path / f"{method.name}.npz", model, method, dataset, predictions, target, seed=3,
                              meta={"p": 1}, progress=False)
        assert n == len(IDS)
        write_attributions(tmp_path / f"{method.name}_mem.npz", in_memory)
        assert (tmp_path / f"{method.name}.npz").read_bytes() == (tmp_path / f"{method.name}_mem.npz").read_bytes()
        back = read_attributions(tmp_path / f"{method.name}.npz")
        assert back["meta"] == json.loads(str(in_memory["meta"])) and back["meta"]["p"] == 1
        np.testing.assert_array_equal(np.asarray(back["maps"]), in_memory["maps"])
        np.testing.assert_array_equal(back["convergence_delta"], in_memory["convergence_delta"])
        # Figure 1's panels read single images from shard files
        assert read_npz_ids(tmp_path / f"{method.name}.npz") == IDS
        picked = read_npz_rows([tmp_path / f"{method.name}.npz"], ["b2"], "maps")
        np.testing.assert_array_equal(picked["b2"], in_memory["maps"][2])

        # the evaluation reads one image at a time from the files and gives the in-memory tables
        config = EvaluationConfig(schemes=(PerturbationConfig(fractions=(0.0, 0.25, 0.5), batch_size=4),),
                                  infidelity_samples=4)
        in_memory["meta"] = json.loads(str(in_memory["meta"]))
        expected = evaluate_split(model, dataset, arrays, in_memory, config, target, (0.5, 0.5, 0.5), seed=1,
                                  progress=False)
        from_files = evaluate_split(model, dataset, predictions, back, config, target, (0.5, 0.5, 0.5), seed=1,
                                    progress=False)
        for ours, theirs in zip(from_files, expected):
            pd.testing.assert_frame_equal(ours, theirs)
        assert len(expected[0]) > 0 and len(expected[1]) == len(IDS) * 2 * 3 * 5  # ids x orders x fractions x curves
