"""How the study's ids and quantities are shown: display names of methods, datasets and models, the canonical
method order, and the header (label, short form, better direction) of every quantity a table shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

KEY_COLUMNS = ("dataset", "model", "method")

#: Canonical order of methods in tables and legends (others follow alphabetically); ``random`` is the baseline.
METHOD_ORDER = ("saliency", "ig", "rollout", "explainer", "random_smooth", "random")
BASELINE_METHODS = ("random", "random_smooth")
#: Methods whose rows carry a note in Table 1 (why their numbers need care).
METHOD_NOTES = {"explainer": "trained on the deletion objective (pixel removal, mean colour)"}

_DISPLAY: dict[str, dict[str, str]] = {
    "method": {"saliency": "Saliency", "ig": "IG", "rollout": "Rollout", "explainer": "Explainer",
               "random": "Random", "random_smooth": "Random (smooth)", "oracle": "Oracle (the depth)"},
    "dataset": {"nyu": "NYU Depth v2", "kitti": "KITTI", "synthindoor": "SynthIndoor", "synthroad": "SynthRoad"},
    "arch": {"meter": "METER", "pixelformer": "PixelFormer"},
}


def display_name(kind: str, value: str) -> str:
    """Human-readable name of a ``method``, ``dataset`` or ``model`` id (unknown ids are returned as they are).

    Models ``<arch>_<variant>`` become e.g. ``METER-XXS`` and ``PixelFormer-nano07``; Captum methods lose their
    prefix (``captum:Occlusion`` becomes ``Occlusion``).
    """
    value = str(value)
    if kind == "method" and value.startswith("captum:"):
        return value[len("captum:"):]
    if kind == "model":
        arch, _, variant = value.partition("_")
        if arch in _DISPLAY["arch"] and variant:
            return f"{_DISPLAY['arch'][arch]}-{variant.upper() if arch == 'meter' else variant}"
        return value
    return _DISPLAY.get(kind, {}).get(value, value)


def method_sort_key(method: str) -> tuple[int, str]:
    """Sort key putting methods in :data:`METHOD_ORDER`, unknown ones after the explanation methods, the baselines
    last."""
    if method in METHOD_ORDER:
        return (METHOD_ORDER.index(method) + (1 if method in BASELINE_METHODS else 0), method)
    return (METHOD_ORDER.index("explainer") + 1, method)


def sort_methods(methods: Sequence[str]) -> list[str]:
    """Unique ``methods`` in :func:`method_sort_key` order."""
    return sorted(set(methods), key=method_sort_key)


@dataclass(frozen=True)
class Header:
    """How a quantity is labelled: ``label`` (Markdown), ``latex`` (LaTeX, already escaped; default: the escaped
    label), ``short`` (in the p-value columns' headers) and which ``direction`` is better (``higher``/``lower``)."""

    label: str
    short: str
    direction: str | None = None
    latex: str | None = None


HEADERS: dict[str, Header] = {
    "dataset": Header("Dataset", "Dataset"),
    "model": Header("Model", "Model"),
    "method": Header("Method", "Method"),
    "n": Header("n", "n"),
    "morf": Header("MoRF AUC (m)", "MoRF", "higher"),
    "lerf": Header("LeRF AUC (m)", "LeRF", "lower"),
    "gap": Header("MoRF − LeRF (m)", "gap", "higher", latex="MoRF $-$ LeRF (m)"),
    "fidelity": Header("Attribution Fidelity", "AF", "higher"),
    "fidelity_n_missing": Header("AF n/a", "AF n/a"),
    "constant_maps_n_missing": Header("constant maps", "constant"),
    "infidelity": Header("Infidelity", "Inf.", "lower"),
    "infidelity_comparable": Header("Infidelity comparable", "comparable"),
    "note": Header("Note", "Note"),
    "morf_target": Header("MoRF AUC (rel.)", "MoRF", "higher"),
    "lerf_target": Header("LeRF AUC (rel.)", "LeRF", "lower"),
    "abs_rel": Header("AbsRel", "AbsRel", "lower"),
    "sq_rel": Header("SqRel", "SqRel", "lower"),
    "rmse": Header("RMSE (m)", "RMSE", "lower"),
    "rmse_log": Header("RMSE log", "RMSE log", "lower"),
    "log10": Header("log10", "log10", "lower"),
    "silog": Header("SILog", "SILog", "lower"),
    "delta1": Header("δ1", "δ1", "higher", latex=r"$\delta_1$"),
    "delta2": Header("δ2", "δ2", "higher", latex=r"$\delta_2$"),
    "delta3": Header("δ3", "δ3", "higher", latex=r"$\delta_3$"),
    # evaluation science (depthxai.report.science)
    "spearman_randomised": Header("Spearman, randomised", "ρ rand.", "lower", latex=r"Spearman, randomised"),
    "ssim_randomised": Header("SSIM, randomised", "SSIM rand.", "lower"),
    "fidelity_original": Header("AF, trained", "AF"),
    "fidelity_randomised": Header("AF, randomised", "AF rand."),
    "focus": Header("Mosaic Focus", "Focus", "higher"),
    "rank_precision": Header("Rank precision", "prec.", "higher"),
    "mass_precision": Header("Mass precision (Fresz)", "mass prec.", "higher"),
    "shift_mass_ratio": Header("Object-shift mass ratio", "shift", "higher"),
    "shift_n": Header("pairs", "pairs"),
    "alpha": Header("Krippendorff α", "α", "higher", latex=r"Krippendorff $\alpha$"),
    "alpha_all": Header("α, all methods (incl. baselines)", "α all", latex=r"$\alpha$, all methods (incl. baselines)"),
    "fidelity_mosaic": Header("AF, mosaics", "AF mosaic"),
    "fidelity_shift": Header("AF, object shift", "AF shift"),
    "icc_analysis_seed": Header("ICC(2,1) over analysis seeds, median over methods", "ICC seed", "higher"),
    "icc_training_seed": Header("ICC(2,1) over training seeds, median over methods", "ICC train", "higher"),
    "n_images": Header("images", "images"),
    "metric": Header("Metric", "Metric"),
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (``\\ & % $ # _ { } ~ ^``) in plain text."""
    replacements = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "−": "$-$",
                    "–": "--", "δ": r"$\delta$", "ρ": r"$\rho$", "Δ": r"$\Delta$", "†": r"$^\dagger$"}
    return "".join(replacements.get(ch, ch) for ch in str(text))


def scheme_name(metric: str, primary: str = "pixel") -> str:
    """The removal scheme of a metric name: the text after ``@``, or ``primary`` for unsuffixed metrics."""
    return metric.split("@", 1)[1] if "@" in metric else primary


def header_of(name: str) -> Header | None:
    """The :class:`Header` of a displayed quantity, including the per-scheme ones of Table 1 (``gap_<scheme>``:
    MoRF - LeRF of the target change; ``delta_<scheme>``: its paired difference to the reference baseline)."""
    if name in HEADERS:
        return HEADERS[name]
    if name.startswith("gap_"):
        scheme = name[len("gap_"):]
        return Header(f"MoRF − LeRF, {scheme}", f"gap {scheme}", "higher",
                      latex=f"MoRF $-$ LeRF, {latex_escape(scheme)}")
    if name.startswith("delta_"):
        scheme = name[len("delta_"):]
        return Header(f"Δ gap vs baseline, {scheme}", f"Δ {scheme}", "higher",
                      latex=f"$\\Delta$ gap vs baseline, {latex_escape(scheme)}")
    return None
