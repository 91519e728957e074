"""Procedural materials evaluated for many surface points at once, whatever primitive each point lies on.

Every :class:`~depthxai.data.synthetic.scene.Material` of a scene becomes one column of a
:class:`MaterialTable`; a point carries the index of its material, and each pattern is evaluated once over all
points that show it, with the material's numbers gathered per point. Textures have metric periods and fade to
their mean once a pixel's footprint covers more than half a period (band limiting instead of aliasing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthxai.data.synthetic.scene import Material

#: Pattern names; a point's pattern is its index here.
PATTERNS = ("solid", "checker", "stripes", "grid", "planks", "noise", "windows", "road")
#: Pattern-specific numbers of :attr:`Material.params` and their defaults (``None``: from ``scale``; ``nan``:
#: required by the patterns that read them).
_PARAMS: dict[str, float | None] = {"line": 0.08, "fill_u": 0.5, "fill_v": 0.5, "period_v": None, "half_width": np.nan,
                                    "lane_width": np.nan, "dash": 3.0, "gap": 6.0, "verge_left": np.nan,
                                    "verge_right": np.nan}
#: Road markings default to 15 cm lines (grid lines to 8 % of a tile).
_ROAD_LINE = 0.15

#: Lattice values of the value noise: one fixed table (period 256 cells), offset per material seed.
_NOISE_TABLE = np.random.default_rng(20250611).random(256 * 256)


@dataclass(frozen=True)
class MaterialTable:
    """Materials as arrays; column ``k`` belongs to primitive ``k``.

    Attributes:
        pattern: ``int8 (P,)`` index into :data:`PATTERNS`.
        color_a, color_b, color_c: ``(3, P)`` linear RGB.
        scale, roughness, emission: ``(P,)``. seed: ``int64 (P,)``.
        params: name -> ``(P,)`` for every name of ``_PARAMS``, defaults filled in.
    """

    pattern: np.ndarray
    color_a: np.ndarray
    color_b: np.ndarray
    color_c: np.ndarray
    scale: np.ndarray
    roughness: np.ndarray
    emission: np.ndarray
    seed: np.ndarray
    params: dict[str, np.ndarray]

    @classmethod
    def from_materials(cls, materials: list[Material]) -> MaterialTable:
        """Pack ``materials``; ``ValueError`` for an unknown pattern."""
        for mat in materials:
            if mat.pattern not in PATTERNS:
                raise ValueError(f"unknown material pattern {mat.pattern!r}")
        params = {}
        for name, default in _PARAMS.items():
            column = []
            for mat in materials:
                fallback = mat.scale if default is None else (_ROAD_LINE if (name, mat.pattern) == ("line", "road")
                                                              else default)
                column.append(float(mat.params.get(name, fallback)))
            params[name] = np.array(column, dtype=np.float64)

        def values(attr: str) -> np.ndarray:
            return np.array([getattr(mat, attr) for mat in materials], dtype=np.float64)

        return cls(np.array([PATTERNS.index(m.pattern) for m in materials], dtype=np.int8), values("color_a").T,
                   values("color_b").T, values("color_c").T, values("scale"), values("roughness"), values("emission"),
                   np.array([m.seed for m in materials], dtype=np.int64), params)


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) on an integer lattice (integer hash, no global state)."""
    x = (ix * 0x27D4EB2D + iy * 0x165667B1 + (seed & 0xFFFF) * 0x9E3779B1) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x ^= x >> 15
    return x.astype(np.float64) / 4294967296.0


def _value_noise(u: np.ndarray, v: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Smoothly interpolated lattice noise in [0, 1] with unit cell size (table look-up, period 256 cells);
    ``seed`` ``int64`` per point."""
    fu, fv = np.floor(u), np.floor(v)
    iu = (fu.astype(np.int64) + (seed * 73)) & 255
    iv = (fv.astype(np.int64) + (seed * 151 >> 8)) & 255
    su, sv = u - fu, v - fv
    su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)
    row0, row1 = iv << 8, ((iv + 1) & 255) << 8
    iu1 = (iu + 1) & 255
    take = _NOISE_TABLE.take
    n00, n10, n01, n11 = take(row0 + iu), take(row0 + iu1), take(row1 + iu), take(row1 + iu1)
    return (n00 * (1 - su) + n10 * su) * (1 - sv) + (n01 * (1 - su) + n11 * su) * sv


def _fade(footprint: np.ndarray, period: np.ndarray | float) -> np.ndarray:
    """Contrast kept by a pattern of ``period`` metres seen with a pixel ``footprint`` (metres): 1 while a pixel
    covers less than a quarter period, 0 from half a period on (band limiting instead of aliasing)."""
    return np.clip(2.0 - 4.0 * footprint / period, 0.0, 1.0)


def _fbm(u: np.ndarray, v: np.ndarray, scale: np.ndarray, footprint: np.ndarray, seed: np.ndarray,
         octaves: int = 3) -> np.ndarray:
    """Zero-mean fractal noise (about [-0.5, 0.5]) with base cell ``scale`` metres per point, octaves faded by
    footprint (an octave that no point resolves is skipped)."""
    total = np.zeros_like(u)
    amp, cell = 0.5, scale
    for k in range(octaves):
        weight = _fade(footprint, cell)
        if weight.any():
            total += amp * weight * (_value_noise(u / cell, v / cell, seed + 101 * k) - 0.5) * 2
        amp, cell = amp * 0.5, cell * 0.5
    return total


def _road_markings(x: np.ndarray, z: np.ndarray, footprint: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """Mix weight of the marking colour on a road along +z: solid edge lines and dashed lane lines.

    Args:
        x, z: world ground coordinates (metres); p: per point ``half_width``, ``lane_width``, ``dash``, ``gap``,
            ``line``.
    """
    half, lane = p["half_width"], p["lane_width"]
    line, dash, gap = p["line"], p["dash"], p["gap"]
    edge = np.abs(np.abs(x) - (half - 0.3)) < line / 2
    # Lane boundaries at -half + k * lane for k = 1 .. n_lanes - 1.
    rel = (x + half) / lane
    k = np.round(rel)
    n_lanes = np.maximum(1, np.round(2 * half / lane))
    near_boundary = (np.abs(rel - k) * lane < line / 2) & (k >= 1) & (k <= n_lanes - 1)
    dashed = near_boundary & ((z % (dash + gap)) < dash)
    hard = (edge | dashed).astype(np.float64)
    # Lines are thin: their footprint-limited contrast follows the line width.
    return hard * _fade(footprint, 4 * line) + (1 - _fade(footprint, 4 * line)) * (line / lane)


class _PerPoint:
    """A material's numbers gathered for a run of points on first use (``take`` of the table's columns)."""

    def __init__(self, table: MaterialTable, material: np.ndarray) -> None:
        self.table, self.material = table, material
        self.cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.cache:
            column = self.table.params[name] if name in self.table.params else getattr(self.table, name)
            self.cache[name] = (column.take(self.material) if column.ndim == 1
                                else column.take(self.material, axis=1))
        return self.cache[name]


def _mix(pattern: str, u: np.ndarray, v: np.ndarray, footprint: np.ndarray, p: _PerPoint) -> np.ndarray:
    """Weight of ``color_b`` against ``color_a`` (0 -> a, 1 -> b) for points that all show ``pattern``."""
    if pattern == "solid":
        return np.zeros_like(u)
    scale = p["scale"]
    if pattern == "checker":
        hard = (np.floor(u / scale) + np.floor(v / scale)) % 2
        return 0.5 + (hard - 0.5) * _fade(footprint, 2 * scale)
    if pattern == "stripes":
        hard = (np.floor(u / scale) % 2).astype(np.float64)
        return 0.5 + (hard - 0.5) * _fade(footprint, 2 * scale)
    if pattern == "grid":
        line = p["line"]
        fu, fv = (u / scale) % 1.0, (v / scale) % 1.0
        hard = ((fu < line) | (fv < line)).astype(np.float64)
        return line * 2 + (hard - line * 2) * _fade(footprint, scale * line * 4)
    if pattern == "planks":
        board = np.floor(u / scale)
        tint = _hash01(board.astype(np.int64), np.zeros_like(board, dtype=np.int64), p["seed"])
        grain = _fbm(u * 8.0, v * 0.5, scale, footprint * 8.0, p["seed"] + 7, octaves=2)
        seam = ((u / scale) % 1.0 < 0.04).astype(np.float64)
        return np.clip(0.5 * tint + 0.3 * grain + 0.25 + seam * _fade(footprint, scale * 0.16), 0, 1)
    if pattern == "noise":
        return np.clip(0.5 + _fbm(u, v, scale, footprint, p["seed"], octaves=4), 0, 1)
    if pattern == "windows":
        fill_u, fill_v, period_v = p["fill_u"], p["fill_v"], p["period_v"]
        fu, fv = (u / scale) % 1.0, (v / period_v) % 1.0
        hard = ((np.abs(fu - 0.5) < fill_u / 2) & (np.abs(fv - 0.5) < fill_v / 2)).astype(np.float64)
        mean = fill_u * fill_v
        return mean + (hard - mean) * _fade(footprint, np.minimum(scale, period_v) * 0.5)
    return _road_markings(u, v, footprint, {k: p[k] for k in ("half_width", "lane_width", "dash", "gap", "line")})


def albedo(table: MaterialTable, material: np.ndarray, uv: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Linear RGB albedo ``(3, M)`` of points with material indices ``material`` ``(M,)`` at texture coordinates
    ``uv`` ``(2, M)`` metres, seen with pixel ``footprint`` ``(M,)`` metres.

    Each pattern runs once over its points, the multiplicative roughness noise once over every rough point.
    Points sorted by pattern are processed in place; others are sorted first and put back.
    """
    codes = table.pattern.take(material)
    if len(codes) > 1 and not bool(np.all(codes[1:] >= codes[:-1])):
        order = np.argsort(codes, kind="stable")
        out = np.empty((3, len(codes)))
        out[:, order] = albedo(table, material.take(order), uv.take(order, axis=1), footprint.take(order))
        return out
    bounds = np.searchsorted(codes, np.arange(len(PATTERNS) + 1))
    u, v = uv[0], uv[1]
    color = np.empty((3, len(codes)))
    for code, pattern in enumerate(PATTERNS):
        lo, hi = bounds[code], bounds[code + 1]
        if lo == hi:
            continue
        us, vs, fs = u[lo:hi], v[lo:hi], footprint[lo:hi]
        p = _PerPoint(table, material[lo:hi])
        mix = _mix(pattern, us, vs, fs, p)
        color[:, lo:hi] = p["color_a"] * (1 - mix) + p["color_b"] * mix
        if pattern == "road":
            verge = np.flatnonzero((us < -p["verge_left"]) | (us > p["verge_right"]))
            if len(verge):
                mv = material[lo:hi].take(verge)
                grass = 1 + 0.8 * _fbm(us.take(verge), vs.take(verge), np.full(len(verge), 0.8), fs.take(verge),
                                       table.seed.take(mv) + 29)
                color[:, lo + verge] = table.color_c.take(mv, axis=1) * grass
    roughness = table.roughness.take(material)
    rough = np.flatnonzero(roughness > 0)
    if len(rough) == len(codes):
        color *= 1 + roughness * _fbm(u, v, table.scale.take(material) * 0.5, footprint, table.seed.take(material) + 13)
    elif len(rough):
        m = material.take(rough)
        noise = _fbm(u.take(rough), v.take(rough), table.scale.take(m) * 0.5, footprint.take(rough),
                     table.seed.take(m) + 13)
        color[:, rough] = color.take(rough, axis=1) * (1 + roughness.take(rough) * noise)
    return np.clip(color, 0.0, 1.0, out=color)
