"""depthxai.runtime: freed memory kept for reuse changes no result; pinned CPU kernels make `depthxai train` write
the same weights whatever instruction set the machine would pick.

Another machine is emulated by the variables that make this one's libraries pick other kernels
(``ATEN_CPU_CAPABILITY=default``: ATen without AVX2 vectorisation; ``ONEDNN_MAX_CPU_ISA=SSE41``: oneDNN's SSE4.1
convolutions), as an AVX-512 machine would pick wider ones. Each training runs in a fresh process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depthxai.data.synthetic import generate_dataset, render_scene
from depthxai.runtime import retain_freed_memory

REPO = Path(__file__).resolve().parents[1]
OTHER_MACHINE = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}

needs_avx2 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or torch.backends.cpu.get_cpu_capability() == "DEFAULT",
    reason="needs an x86-64 CPU with AVX2 (the pinned instruction set)")


def test_retained_memory_changes_no_result() -> None:
    before = render_scene("indoor", 4, (24, 32))
    assert retain_freed_memory() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    after = render_scene("indoor", 4, (24, 32))
    assert before[0].tobytes() == after[0].tobytes() and before[1].tobytes() == after[1].tobytes()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "DEPTHXAI_CPU_ISA")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _capability(**extra: str) -> dict[str, object]:
    """What a fresh process reports after pin_cpu_kernels (or the error it raises)."""
    code = ("import json\nfrom depthxai.runtime import pin_cpu_kernels\n"
            "try:\n    pins = pin_cpu_kernels()\nexcept Exception as exc:\n    pins = repr(exc)\n"
            "import torch\nprint(json.dumps({'pins': pins, 'capability': torch.backends.cpu.get_cpu_capability()}))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(**extra), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_avx2
def test_the_pin_overrides_what_the_environment_says() -> None:
    # This process has imported torch: pinning now could not reach MKL and oneDNN, so it refuses.
    from depthxai.runtime import pin_cpu_kernels
    with pytest.raises(RuntimeError, match="before torch is imported"):
        pin_cpu_kernels("default")
    assert _capability(**OTHER_MACHINE) == {
        "pins": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}, "capability": "AVX2"}
    assert _capability(DEPTHXAI_CPU_ISA="native", **OTHER_MACHINE) == {"pins": {}, "capability": "DEFAULT"}
    assert _capability(DEPTHXAI_CPU_ISA="default")["capability"] == "DEFAULT"
    assert "DEPTHXAI_CPU_ISA='avx1024'" in str(_capability(DEPTHXAI_CPU_ISA="avx1024")["pins"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kernels")
    generate_dataset(root, "synthindoor", "indoor", n_train=8, n_test=2, seed=4, size=(48, 64), progress=False)
    return root


def _weights_hash(data: Path, out: Path, model: str, **extra: str) -> str:
    """sha256 of the weights `depthxai train` writes for a 2-step training in a fresh process."""
    settings = {"epochs": 1, "batch_size": 4, "lr": 0.002, "weight_decay": 0.0001, "seed": 0, "ema": 0.0}
    subprocess.run([sys.executable, "-m", "depthxai", "train", "-q", "--model", model, "--data", str(data),
                    "--train", json.dumps(settings), "--threads", "1", "--out-weights", str(out / "w.pt"),
                    "--out-metrics", str(out / "m.json")], env=_env(**extra), check=True, capture_output=True)
    return hashlib.sha256((out / "w.pt").read_bytes()).hexdigest()


@needs_avx2
@pytest.mark.slow
@pytest.mark.parametrize("model", ["meter_xxs_synthindoor", "pixelformer_nano07_synthindoor"])
def test_weights_do_not_depend_on_the_kernels_once_pinned(tiny: Path, tmp_path: Path, model: str) -> None:
    native = {"DEPTHXAI_CPU_ISA": "native"}
    here = _weights_hash(tiny, tmp_path, model, **native)
    other = _weights_hash(tiny, tmp_path, model, **native, **OTHER_MACHINE)
    # Unpinned, the two "machines" train different weights: the kernels matter.
    assert here != other
    # Pinned (the default), both train the same weights. (They need not equal the unpinned ones: MKL's automatic
    # choice on an AMD CPU is not its AVX2 reproducibility branch.)
    assert _weights_hash(tiny, tmp_path, model, **OTHER_MACHINE) == _weights_hash(tiny, tmp_path, model)


def test_check_cpu_kernels_names_the_instruction_set_torch_runs() -> None:
    import torch

    from depthxai.device import check_cpu_kernels
    from depthxai.errors import ConfigError

    active = torch.backends.cpu.get_cpu_capability().lower()
    check_cpu_kernels({})  # nothing pinned
    check_cpu_kernels({"ATEN_CPU_CAPABILITY": active})
    other = "default" if active != "default" else "avx2"
    with pytest.raises(ConfigError, match=f"at {active.upper()}, not {other.upper()}"):
        check_cpu_kernels({"ATEN_CPU_CAPABILITY": other})
