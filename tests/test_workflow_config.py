"""Models from elsewhere (hf:, module:) and Captum methods in the workflow's configuration: the one-line errors that
name the key, what the workflow derives from such entries (stochastic methods, the science stage's methods), and
the Depth Anything preset's plan (snakemake -n)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from depthxai.config import (
    CAPTUM_CLASSES,
    CAPTUM_RANDOM_INSIDE,
    captum_class,
    load_config,
    method_name,
    model_source,
    science_methods,
    stochastic_methods,
    validate_config,
)
from depthxai.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "config.yaml").read_text())
HF = {"source": "hf:depth-anything/Depth-Anything-V2-Small-hf", "weights": {"synthindoor": None}}
MODULE = {"source": "module:mypackage.nets:build_net", "weights": {"synthindoor": "nets/depthnet.pt"}}
OCCLUSION = {"method": "captum:Occlusion", "sliding_window_shapes": [3, 16, 16], "strides": [3, 8, 8]}
SMOOTHGRAD = {"method": "captum:NoiseTunnel(Saliency)", "nt_type": "smoothgrad", "nt_samples": 8, "stdevs": 0.1}


def with_entries(models: dict[str, Any] | None = None, methods: dict[str, Any] | None = None,
                 **sections: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    config["models"].update(models or {})
    config["methods"].update(methods or {})
    config.update(sections)
    return config


def test_hf_module_models_and_captum_methods_are_accepted() -> None:
    config = validate_config(with_entries(
        models={"depth_anything_small": dict(HF, card={"input_size": [266, 350], "output_kind": "relative"}),
                "my_net": dict(MODULE, card={"input_size": [192, 256], "factory_kwargs": {"width": 8}})},
        methods={"occlusion": OCCLUSION, "smoothgrad": SMOOTHGRAD}))
    assert {m: model_source(spec) for m, spec in config["models"].items()} == {
        "meter_xxs": "registry", "pixelformer_nano07": "registry", "depth_anything_small": "hf", "my_net": "module"}
    assert method_name(config, "occlusion") == "captum:Occlusion" and method_name(config, "ig") == "ig"
    assert config["evaluation"]["alignment"] == {"method": "lstsq", "space": "disparity"}  # the documented default
    # SmoothGrad draws noise: its maps are recomputed in the analysis-seed test-retest; Occlusion's are not
    assert stochastic_methods(config) == ["random", "random_smooth", "smoothgrad"]
    # the science checks build Captum methods from their ids: the class travels with the parameters
    assert science_methods(config)["occlusion"] == OCCLUSION


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("bad source prefix", with_entries(models={"dpt": dict(HF, source="hub:Intel/dpt-large")}),
     r"^config key models\.dpt\.source: 'hub:Intel/dpt-large' has an unknown prefix 'hub:'; use hf:"),
    ("source without prefix", with_entries(models={"dpt": dict(HF, source="Intel/dpt-large")}),
     r"^config key models\.dpt\.source: 'Intel/dpt-large' has no prefix"),
    ("module source misspelt", with_entries(models={"net": dict(MODULE, source="module:mypackage.nets")}),
     r"^config key models\.net\.source: 'module:mypackage\.nets' is not module:<python\.module>:<factory>"),
    ("hf model with training weights", with_entries(models={"da": dict(HF, weights={"synthindoor": "train"})}),
     r"^config key models\.da\.weights\.synthindoor: 'train': hf: and module: models are never trained"),
    ("hf model with a weights file", with_entries(models={"da": dict(HF, weights={"synthindoor": "x.pt"})}),
     r"^config key models\.da\.weights\.synthindoor: 'x\.pt': an hf: model takes its weights from"),
    ("module model without weights", with_entries(models={"net": dict(MODULE, weights={"synthindoor": None})}),
     r"^config key models\.net\.weights\.synthindoor: a module: model needs its weights"),
    ("hf model with train settings", with_entries(models={"da": dict(HF, train={"epochs": 1})}),
     r"^config key models\.da\.train: hf: and module: models are never trained by the workflow"),
    ("hf model under a registry id", with_entries(models={"meter_xs": HF}),
     r"^config key models\.meter_xs: 'meter_xs' is a registry architecture"),
    ("unknown registry id", with_entries(models={"meter_xl": {"weights": {"synthindoor": "train"}}}),
     r"^config key models\.meter_xl: not a registry architecture .* needs source: hf:"),
    ("registry model with a card", with_entries(models={"meter_xxs": dict(BASE["models"]["meter_xxs"],
                                                                          card={"input_size": [96, 128]})}),
     r"^config key models\.meter_xxs\.card: only for hf: and module: models"),
    ("registry model with null weights", with_entries(models={"meter_xxs": {"weights": {"synthindoor": None}}}),
     r"^config key models\.meter_xxs\.weights\.synthindoor: None is neither 'train' nor a key of downloads"),
    ("unknown card field", with_entries(models={"da": dict(HF, card={"input_sizes": [266, 350]})}),
     r"^config key models\.da\.card\.input_sizes: unknown key"),
    ("factory_kwargs for hf", with_entries(models={"da": dict(HF, card={"factory_kwargs": {}})}),
     r"^config key models\.da\.card\.factory_kwargs: only for module: models"),
    ("model id not path-safe", with_entries(models={"Depth-Anything": HF}), r"^config key models: 'Depth-Anything' "),
    ("unknown Captum class", with_entries(methods={"occ": dict(OCCLUSION, method="captum:Occlusoin")}),
     r"^config key methods\.occ\.method: 'captum:Occlusoin': captum\.attr has no primary method 'Occlusoin'"),
    ("unknown class in NoiseTunnel", with_entries(methods={"sg": dict(SMOOTHGRAD,
                                                                      method="captum:NoiseTunnel(Salency)")}),
     r"^config key methods\.sg\.method: 'captum:NoiseTunnel\(Salency\)': captum\.attr has no primary method"),
    ("method not spelt captum:", with_entries(methods={"occ": dict(OCCLUSION, method="Occlusion")}),
     r"^config key methods\.occ\.method: 'Occlusion' is not captum:<Class> or captum:NoiseTunnel\(<Class>\)"),
    ("only NoiseTunnel wraps", with_entries(methods={"occ": dict(OCCLUSION, method="captum:Lime(Saliency)")}),
     r"^config key methods\.occ\.method: 'captum:Lime\(Saliency\)' is not captum:<Class>"),
    ("unknown id without method", with_entries(methods={"gradcam": {"layer": "net.decoder"}}),
     r"^config key methods\.gradcam: not one of depthxai's methods .* needs method: captum:<Class>"),
    ("reserved id", with_entries(methods={"random_occlusion": OCCLUSION}),
     r"^config key methods\.random_occlusion: ids starting with 'random' .* are reserved"),
    ("method id not path-safe", with_entries(methods={"occ/../x": OCCLUSION}), r"^config key methods: 'occ/\.\./x' "),
    ("median alignment of disparity", with_entries(evaluation={"alignment": {"method": "median"}}),
     r"^config key evaluation\.alignment\.space: median scaling applies to depth-like predictions"),
    ("unknown alignment", with_entries(evaluation={"alignment": {"method": "ransac"}}),
     r"^config key evaluation\.alignment\.method: 'ransac' is not one of"),
]


@pytest.mark.parametrize(("config", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_errors_are_one_line_and_name_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    text = str(caught.value)
    assert "\n" not in text
    assert re.search(message, text), text


def test_captum_classes_are_those_the_attribution_module_offers() -> None:
    # the config reads the list without Captum (the workflow validates without PyTorch): it must not drift
    from depthxai.attribution.captum_methods import SPECS, _primary_classes

    assert tuple(_primary_classes()) == CAPTUM_CLASSES
    assert tuple(sorted(k for k, spec in SPECS.items() if spec.random_inside)) == CAPTUM_RANDOM_INSIDE
    assert captum_class("captum:NoiseTunnel(IntegratedGradients)") == ("IntegratedGradients", True)
    assert captum_class("captum:Occlusion") == ("Occlusion", False)
    assert captum_class("captum:Occlusion(Saliency)") is None


def test_stochastic_captum_methods_match_the_built_methods() -> None:
    from depthxai.attribution.captum_methods import CaptumMethod

    methods = {"sg": SMOOTHGRAD, "occ": OCCLUSION, "gs": {"method": "captum:GradientShap"},
               "dls": {"method": "captum:DeepLiftShap"}, "ixg": {"method": "captum:InputXGradient"},
               "noisy_ixg": {"method": "captum:IntegratedGradients", "baselines": "noise"},
               "lime": {"method": "captum:Lime"}}
    config = validate_config(with_entries(methods=methods))
    stochastic = set(stochastic_methods(config))
    for method_id, params in methods.items():
        built = CaptumMethod(params["method"], {k: v for k, v in params.items() if k != "method"})
        assert built.stochastic == (method_id in stochastic), method_id


def _dry_run(configfile: Path, workdir: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--configfile",
                             str(configfile), "--directory", str(workdir), "--snakefile", str(REPO / "Snakefile")],
                            capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_depth_anything_preset_plans(tmp_path: Path) -> None:
    preset = REPO / "config" / "depth-anything.yaml"
    config = load_config(preset)
    assert config["models"]["depth_anything_small"]["source"] == "hf:depth-anything/Depth-Anything-V2-Small-hf"
    text = _dry_run(preset, tmp_path)
    commands = [line.split("Shell command: ", 1)[1] for line in text.splitlines() if "Shell command: python" in line]
    jobs = {line.split()[1].rstrip(":") for line in text.splitlines() if line.startswith(("rule ", "localrule "))}
    # never trained by the DAG; no training-seed repeats; the object shift needs synthetic scenes
    assert not jobs & {"train_model", "retrain_model", "train_explainer", "object_shift", "predict_retrained"}
    assert {"download_file", "prepare_nyu", "predict", "attribute", "evaluate", "sanity", "localisation",
            "attribute_repeat", "evaluate_repeat", "model_card", "qualitative_panels", "claims"} <= jobs
    card = json.dumps({"input_size": [518, 686]})
    model = f"--model hf:depth-anything/Depth-Anything-V2-Small-hf --card '{card}'"
    alignment = "--alignment '{\"method\": \"lstsq\", \"space\": \"disparity\"}'"
    predict = next(c for c in commands if " predict-split " in c)
    assert f"predict-split {model} {alignment} --data results/data/nyu " in predict and "--weights" not in predict
    occlusion = next(c for c in commands if " attribute " in c and "/occlusion/" in c)
    assert "--method captum:Occlusion --method-id occlusion --params '{\"sliding_window_shapes\"" in occlusion
    assert any(" evaluate " in c and alignment in c for c in commands)
    # the stochastic SmoothGrad (and the random baselines) get maps of their own in the analysis-seed repeat
    repeats = {c.split("--method-id ")[1].split()[0] if "--method-id" in c else c.split("--method ")[1].split()[0]
               for c in commands if " attribute " in c and "/retest/" in c}
    assert repeats == {"smoothgrad", "random", "random_smooth"}
