"""Procedural scenes with exact metric depth: the embedded default dataset (no download needed).

A scene is an explicit list of primitives (planes, boxes rotated about the vertical axis, spheres), each with a
procedural material, plus a pinhole camera and one light. :func:`render` ray-casts it with vectorised numpy:
every pixel gets the nearest hit, its depth and the id of the object it belongs to; shading is Lambertian plus
ambient, with hard shadows cast by the objects, distance fall-off of an indoor lamp and haze outdoors.

The images carry the monocular depth cues a network can learn: perspective (fixed intrinsics, objects of
plausible metric size), texture gradient (textures have metric periods and fade to their mean once a pixel
covers more than half a period, as a band-limited camera would see them), occlusion, vertical position on a
ground plane, shadows and, outdoors, atmospheric haze.

Conventions:
    * World frame: x right, y up, z forward (metres); floor / ground at y = 0.
    * Camera frame: x right, y down, z along the optical axis; pixel (row v, column u) has its centre at
      integer coordinates, so its ray is ``((u - cx) / fx, (v - cy) / fy, 1)`` in the camera frame.
    * Depth is **z-depth** (distance along the optical axis, as in NYU Depth v2 and KITTI), not ray length.
      Rays are parametrised with a unit z component in the camera frame, so the ray parameter *is* z-depth.
    * Depth 0 means "no ground truth": sky, and anything beyond the setup's ``max_depth``.

Two camera set-ups (``SETUPS``): ``indoor`` (NYU-like room, Kinect intrinsics, 0-10 m, depth in mm) and
``road`` (KITTI-like street, KITTI intrinsics, camera 1.65 m above the road, 0-80 m, depth * 256).

Determinism: image ``i`` of split ``s`` is rendered from ``default_rng(image_seed(base, s, i))``, so every
image can be re-rendered alone and adding images never changes the earlier ones.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from depthxai.data.io import DatasetInfo, write_dataset_info, write_depth, write_index, write_rgb

Vec3 = tuple[float, float, float]

#: Ray parameters below this are treated as self-intersections (metres of z-depth).
_EPS = 1e-6
#: Offset of shadow-ray origins along the surface normal (metres).
_SHADOW_BIAS = 1e-3
#: Version of the scene generator, stored in ``dataset.json`` (bump when the images change).
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SetupSpec:
    """Fixed facts of a camera set-up.

    Attributes:
        native_size: (H, W) the reference intrinsics belong to.
        intrinsics: ``fx, fy, cx, cy`` in pixels at ``native_size``.
        default_size: (H, W) rendered when no size is given.
        max_depth: metres; deeper points have no ground truth (depth 0).
        depth_scale: PNG value per metre of the written depth maps.
    """

    name: str
    native_size: tuple[int, int]
    intrinsics: tuple[float, float, float, float]
    default_size: tuple[int, int]
    max_depth: float
    depth_scale: float


SETUPS: dict[str, SetupSpec] = {
    # NYU Depth v2 Kinect colour camera (Silberman et al., 2012), 640x480.
    "indoor": SetupSpec("indoor", (480, 640), (518.8579, 519.4696, 325.5824, 253.7362), (240, 320), 10.0, 1000.0),
    # KITTI 2011_09_26 P2 (Geiger et al., 2012), 1242x375.
    "road": SetupSpec("road", (375, 1242), (721.5377, 721.5377, 609.5593, 172.8540), (188, 624), 80.0, 256.0),
}


def _setup(setup: str) -> SetupSpec:
    try:
        return SETUPS[setup]
    except KeyError:
        raise ValueError(f"unknown synthetic setup {setup!r}; choose one of {sorted(SETUPS)}") from None


def scaled_intrinsics(setup: str, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The set-up's intrinsics ``(fx, fy, cx, cy)`` rescaled to an image of ``size`` = (H, W).

    Pixel centres sit at integer coordinates, so a principal point scales as ``(c + 0.5) * s - 0.5``.
    """
    spec = _setup(setup)
    sy, sx = size[0] / spec.native_size[0], size[1] / spec.native_size[1]
    fx, fy, cx, cy = spec.intrinsics
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


# --------------------------------------------------------------------------------------------- scene description


@dataclass(frozen=True)
class Material:
    """A procedural surface colour, a function of metric surface coordinates (u, v).

    Attributes:
        pattern: ``solid``, ``checker``, ``stripes`` (along u), ``grid`` (tiles with grout lines), ``planks``
            (boards along u with per-board tint), ``noise`` (fractal value noise), ``windows`` (facade:
            rectangles of ``color_b`` on ``color_a``) or ``road`` (asphalt with lane markings; u, v = world x, z).
        color_a, color_b: linear RGB albedos in [0, 1]; ``color_c``: a third one (``road``: the verge).
        scale: the pattern's period in metres.
        roughness: amplitude of the multiplicative fractal noise every pattern carries (0 = none).
        emission: added radiance as a multiple of the albedo (lamps, windows to the outside).
        seed: seed of the material's noise lattice.
        params: pattern-specific numbers (``road``: ``half_width``, ``lane_width``, ``dash``, ``gap``, and
            ``verge_left``, ``verge_right``: |x| beyond which the ground is grass; ``windows``: ``fill_u``,
            ``fill_v``, ``period_v``; ``grid``: ``line``).
    """

    pattern: str = "solid"
    color_a: Vec3 = (0.5, 0.5, 0.5)
    color_b: Vec3 = (0.2, 0.2, 0.2)
    color_c: Vec3 = (0.0, 0.0, 0.0)
    scale: float = 1.0
    roughness: float = 0.0
    emission: float = 0.0
    seed: int = 0
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Plane:
    """The infinite plane through ``point`` with unit ``normal``; texture coordinates along ``u_axis`` and
    ``normal x u_axis`` measured from ``point``."""

    point: Vec3
    normal: Vec3
    u_axis: Vec3
    material: Material
    object_id: int = 0
    cast_shadow: bool = False
    movable: bool = False


@dataclass(frozen=True)
class Box:
    """A box with centre ``center``, half extents ``half`` (local x, y, z) and rotation ``yaw`` (radians, about
    the world's vertical axis; positive turns local +z towards world +x)."""

    center: Vec3
    half: Vec3
    yaw: float
    material: Material
    object_id: int = 0
    cast_shadow: bool = True
    movable: bool = False


@dataclass(frozen=True)
class Sphere:
    """A sphere with centre ``center`` and ``radius`` (metres)."""

    center: Vec3
    radius: float
    material: Material
    object_id: int = 0
    cast_shadow: bool = True
    movable: bool = False


Primitive = Plane | Box | Sphere


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: intrinsics in pixels for an image of ``size`` = (H, W), centre ``position`` (world) and
    orientation ``yaw, pitch, roll`` in radians (pitch > 0 looks up)."""

    size: tuple[int, int]
    fx: float
    fy: float
    cx: float
    cy: float
    position: Vec3
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def rotation(self) -> np.ndarray:
        """``(3, 3)`` matrix taking camera-frame vectors (x right, y down, z forward) to the world frame."""
        cy_, sy_ = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        flip = np.diag([1.0, -1.0, 1.0])  # camera y points down, world y up
        yaw = np.array([[cy_, 0.0, sy_], [0.0, 1.0, 0.0], [-sy_, 0.0, cy_]])
        pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])  # in the y-up frame: +z tilts up
        roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
        return yaw @ pitch @ roll @ flip

    def ray_directions(self) -> np.ndarray:
        """World directions ``(3, H, W)`` of the pixel rays, scaled so that the camera-frame z component is 1."""
        h, w = self.size
        u = (np.arange(w, dtype=np.float64) - self.cx) / self.fx
        v = (np.arange(h, dtype=np.float64) - self.cy) / self.fy
        rot = self.rotation()
        return rot[:, 0, None, None] * u[None, None, :] + rot[:, 1, None, None] * v[None, :, None] + rot[:, 2, None, None]

    def forward(self) -> np.ndarray:
        """The optical axis as a world unit vector."""
        return self.rotation()[:, 2]


@dataclass(frozen=True)
class Light:
    """One light plus ambient fill.

    Attributes:
        kind: ``sun`` (``vector`` = unit direction towards the light) or ``point`` (``vector`` = position).
        intensity: diffuse strength; ``ambient``: constant fill.
        falloff_m: point light only: irradiance scales with ``1 / (1 + (r / falloff_m)^2)``.
    """

    kind: str
    vector: Vec3
    intensity: float
    ambient: float
    falloff_m: float = 0.0


@dataclass(frozen=True)
class Scene:
    """Everything :func:`render` needs. ``haze_m`` > 0 blends surfaces towards the horizon colour with
    ``exp(-depth / haze_m)``; ``max_depth`` caps the valid ground truth."""

    camera: Camera
    primitives: tuple[Primitive, ...]
    light: Light
    sky_zenith: Vec3
    sky_horizon: Vec3
    max_depth: float
    haze_m: float = 0.0
    exposure: float = 1.0


@dataclass(frozen=True)
class Render:
    """The result of :func:`render`.

    Attributes:
        rgb: ``uint8 (H, W, 3)`` sRGB image.
        depth: ``float32 (H, W)`` z-depth in metres, 0 where there is no ground truth (sky, beyond max_depth).
        object_ids: ``int32 (H, W)``: the ``object_id`` of the primitive seen at each pixel, -1 for sky.
        hit_depth: ``float64 (H, W)`` z-depth of the nearest hit, ``inf`` for sky, not capped at max_depth.
    """

    rgb: np.ndarray
    depth: np.ndarray
    object_ids: np.ndarray
    hit_depth: np.ndarray


# --------------------------------------------------------------------------------------------- ray casting


def _yaw_matrix(yaw: float) -> np.ndarray:
    """Local-to-world rotation of a box (columns are the local axes in world coordinates)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _dot(a: np.ndarray, b: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """Row-wise dot product of ``(3, N)`` arrays (or of one with a fixed 3-vector)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _to_local(prim: Box, vec: np.ndarray) -> np.ndarray:
    """World vectors ``(3, N)`` in the box's frame (rotation about the vertical axis by ``-yaw``)."""
    if prim.yaw == 0.0:
        return vec
    c, s = math.cos(prim.yaw), math.sin(prim.yaw)
    return np.stack([c * vec[0] - s * vec[2], vec[1], s * vec[0] + c * vec[2]])


def _intersect(prim: Primitive, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Nearest ray parameter ``t > eps`` with ``origin + t * dir`` on ``prim``, ``inf`` where the ray misses.

    Args:
        origins: ``(3,)`` or ``(3, N)``; dirs: ``(3, N)`` (not necessarily unit). Components first: numpy is much
            faster on three long rows than on N short ones.

    Returns:
        ``(N,)`` float64.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if isinstance(prim, Plane):
            denom = _dot(dirs, prim.normal)
            offset = np.asarray(prim.point, dtype=np.float64) @ np.asarray(prim.normal) - _dot(origins, prim.normal)
            t = offset / denom
            return np.where((t > _EPS) & np.isfinite(t), t, np.inf)
        center = np.asarray(prim.center, dtype=np.float64)
        oc = origins - (center if origins.ndim == 1 else center[:, None])
        if isinstance(prim, Sphere):
            a = _dot(dirs, dirs)
            b = _dot(dirs, oc)
            c = _dot(oc, oc) - prim.radius**2
            disc = b * b - a * c
            root = np.sqrt(np.maximum(disc, 0.0))
            near = (-b - root) / a
            t = np.where(near > _EPS, near, (-b + root) / a)
            return np.where((disc >= 0) & (t > _EPS), t, np.inf)
        # Box: slab test in the box's local frame. A ray parallel to a slab gives +-inf, or nan (0 * inf) when it
        # lies in a face plane; fmin/fmax skip the nan, so such rays count as missing that face.
        o = _to_local(prim, oc if oc.ndim == 2 else oc[:, None])
        d = _to_local(prim, dirs)
        t_lo = np.full(d.shape[1], -np.inf)
        t_hi = np.full(d.shape[1], np.inf)
        for k in range(3):
            inv = 1.0 / d[k]
            t1 = (-prim.half[k] - o[k]) * inv
            t2 = (prim.half[k] - o[k]) * inv
            t_lo = np.fmax(t_lo, np.fmin(t1, t2))
            t_hi = np.fmin(t_hi, np.fmax(t1, t2))
        t = np.where(t_lo > _EPS, t_lo, t_hi)
        return np.where((t_hi >= t_lo) & (t > _EPS), t, np.inf)


def _surface(prim: Primitive, points: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals facing the viewer ``(3, N)`` and metric texture coordinates ``(2, N)`` at hit ``points``
    ``(3, N)`` seen along ``dirs`` ``(3, N)``."""
    if isinstance(prim, Plane):
        n = np.asarray(prim.normal, dtype=np.float64)
        u_axis = np.asarray(prim.u_axis, dtype=np.float64)
        rel = points - np.asarray(prim.point, dtype=np.float64)[:, None]
        uv = np.stack([_dot(rel, u_axis), _dot(rel, np.cross(n, u_axis))])
        normals = np.repeat(n[:, None], points.shape[1], axis=1)
    elif isinstance(prim, Sphere):
        rel = (points - np.asarray(prim.center, dtype=np.float64)[:, None]) / prim.radius
        normals = rel
        # Longitude/latitude scaled by the radius: metric along the equator.
        uv = np.stack([np.arctan2(rel[0], rel[2]), np.arccos(np.clip(rel[1], -1, 1))]) * prim.radius
    else:
        local = _to_local(prim, points - np.asarray(prim.center, dtype=np.float64)[:, None])
        half = np.asarray(prim.half)[:, None]
        axis = np.abs(local / half).argmax(axis=0)
        cols = np.arange(local.shape[1])
        normals_local = np.zeros_like(local)
        normals_local[axis, cols] = np.sign(local[axis, cols])
        c, s = math.cos(prim.yaw), math.sin(prim.yaw)
        normals = np.stack([c * normals_local[0] + s * normals_local[2], normals_local[1],
                            -s * normals_local[0] + c * normals_local[2]])
        # Face coordinates: x faces use (z, y), y faces (x, z), z faces (x, y); offset by the half extents so
        # that patterns start at a box corner.
        shifted = local + half
        uv = np.stack([np.choose(axis, [shifted[2], shifted[0], shifted[0]]),
                       np.choose(axis, [shifted[1], shifted[2], shifted[1]])])
    # Face the viewer (planes are two-sided; numerical safety for the others).
    flip = _dot(normals, dirs) > 0
    normals[:, flip] *= -1
    return normals, uv


def _bounding_sphere(prim: Primitive) -> tuple[np.ndarray, float] | None:
    """Centre and radius of a sphere enclosing ``prim``; ``None`` for unbounded planes."""
    if isinstance(prim, Sphere):
        return np.asarray(prim.center, dtype=np.float64), prim.radius
    if isinstance(prim, Box):
        return np.asarray(prim.center, dtype=np.float64), float(np.linalg.norm(prim.half))
    return None


_UNIT_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def _corners(prim: Box | Sphere) -> np.ndarray:
    """``(8, 3)`` world corners of a box, or of the axis-aligned cube around a sphere."""
    if isinstance(prim, Sphere):
        return np.asarray(prim.center) + prim.radius * _UNIT_CORNERS
    local = _UNIT_CORNERS * np.asarray(prim.half)
    return np.asarray(prim.center) + local @ _yaw_matrix(prim.yaw).T


def _screen_rect(camera: Camera, rot: np.ndarray, prim: Primitive) -> tuple[int, int, int, int] | None:
    """Conservative pixel rectangle ``(r0, r1, c0, c1)`` that contains ``prim``'s image; ``None`` if it cannot be
    seen. Only rays in this rectangle are tested (a large speed-up for small objects). The projection of a convex
    body lies in the hull of its corners' projections when all corners are in front of the camera; otherwise the
    whole image is tested."""
    h, w = camera.size
    if isinstance(prim, Plane):
        return 0, h, 0, w
    cam = (_corners(prim) - np.asarray(camera.position)) @ rot  # world -> camera frame
    z = cam[:, 2]
    if np.all(z <= 0):
        return None
    if np.any(z <= 1e-3):
        return 0, h, 0, w
    u = cam[:, 0] / z * camera.fx + camera.cx
    v = cam[:, 1] / z * camera.fy + camera.cy
    c0, c1 = int(np.clip(math.floor(u.min()) - 1, 0, w)), int(np.clip(math.ceil(u.max()) + 2, 0, w))
    r0, r1 = int(np.clip(math.floor(v.min()) - 1, 0, h)), int(np.clip(math.ceil(v.max()) + 2, 0, h))
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def cast_rays(scene: Scene, dirs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Primary visibility: nearest z-depth ``(H, W)`` (``inf`` = nothing hit) and primitive index ``(H, W)``
    (-1 = nothing hit). ``dirs``: the camera's :meth:`Camera.ray_directions`, if already computed."""
    camera = scene.camera
    rot = camera.rotation()
    dirs = camera.ray_directions() if dirs is None else dirs
    origin = np.asarray(camera.position, dtype=np.float64)
    best_t = np.full(camera.size, np.inf)
    best_idx = np.full(camera.size, -1, dtype=np.int64)
    for idx, prim in enumerate(scene.primitives):
        rect = _screen_rect(camera, rot, prim)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        sub_dirs = dirs[:, r0:r1, c0:c1].reshape(3, -1)
        t = _intersect(prim, origin, sub_dirs).reshape(r1 - r0, c1 - c0)
        view_t = best_t[r0:r1, c0:c1]
        closer = t < view_t
        view_t[closer] = t[closer]
        best_idx[r0:r1, c0:c1][closer] = idx
    return best_t, best_idx


def _shadow_visibility(scene: Scene, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """1 where the light reaches ``points`` (3, N), 0 where a shadow-casting primitive blocks it.

    Each caster is first culled with its bounding sphere in the light's view (a cone from a point light, a
    cylinder along the sun direction), so that exact intersections are only computed for the few candidate points.
    """
    light = scene.light
    origins = points + _SHADOW_BIAS * normals
    n = points.shape[1]
    lit = np.ones(n, dtype=bool)
    if light.kind == "sun":
        sun = np.asarray(light.vector, dtype=np.float64)
        e1 = np.cross(sun, [0.0, 0.0, 1.0] if abs(sun[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(sun, e1)
        coord_a, coord_b, height = _dot(origins, e1), _dot(origins, e2), _dot(origins, sun)
        to_light = np.repeat(sun[:, None], n, axis=1)
        reach = np.inf
    else:
        lamp = np.asarray(light.vector, dtype=np.float64)
        to_light = lamp[:, None] - origins
        dist = np.sqrt(_dot(to_light, to_light))
        from_lamp = -to_light / dist
        reach = 1.0  # the light sits at parameter 1 of the unnormalised direction
    for prim in scene.primitives:
        if not prim.cast_shadow:
            continue
        bound = _bounding_sphere(prim)
        if bound is None:
            cand = lit.copy()
        elif light.kind == "sun":
            center, radius = bound
            da, db = coord_a - center @ e1, coord_b - center @ e2
            cand = lit & (da * da + db * db <= radius * radius) & (height < center @ sun + radius)
        else:
            center, radius = bound
            axis = center - lamp
            dc = float(np.linalg.norm(axis))
            if dc <= radius:
                cand = lit.copy()
            else:
                cos_cone = math.sqrt(1.0 - (radius / dc) ** 2)
                cand = lit & (_dot(from_lamp, axis / dc) >= cos_cone) & (dist > dc - radius)
        idx = np.flatnonzero(cand)
        if len(idx) == 0:
            continue
        t = _intersect(prim, origins[:, idx], to_light[:, idx])
        lit[idx[t < reach]] = False
    return lit.astype(np.float64)


# --------------------------------------------------------------------------------------------- materials


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) on an integer lattice (integer hash, no global state)."""
    x = (ix * 0x27D4EB2D + iy * 0x165667B1 + (seed & 0xFFFF) * 0x9E3779B1) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x ^= x >> 15
    return x.astype(np.float64) / 4294967296.0


#: Lattice values of the value noise: one fixed table (period 256 cells), offset per material seed.
_NOISE_TABLE = np.random.default_rng(20250611).random(256 * 256)


def _value_noise(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Smoothly interpolated lattice noise in [0, 1] with unit cell size (table look-up, period 256 cells)."""
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


def _fade(footprint: np.ndarray, period: float) -> np.ndarray:
    """Contrast kept by a pattern of ``period`` metres seen with a pixel ``footprint`` (metres): 1 while a pixel
    covers less than a quarter period, 0 from half a period on (band limiting instead of aliasing)."""
    return np.clip(2.0 - 4.0 * footprint / period, 0.0, 1.0)


def _fbm(u: np.ndarray, v: np.ndarray, scale: float, footprint: np.ndarray, seed: int, octaves: int = 3) -> np.ndarray:
    """Zero-mean fractal noise (about [-0.5, 0.5]) with base cell ``scale`` metres, octaves faded by footprint."""
    total = np.zeros_like(u)
    amp, cell = 0.5, scale
    for k in range(octaves):
        weight = _fade(footprint, cell)
        if np.any(weight > 0):
            total += amp * weight * (_value_noise(u / cell, v / cell, seed + 101 * k) - 0.5) * 2
        amp, cell = amp * 0.5, cell * 0.5
    return total


def _albedo(mat: Material, uv: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Linear RGB albedo ``(3, N)`` of ``mat`` at texture coordinates ``uv`` (2, N) metres."""
    u, v = uv[0], uv[1]
    a, b = np.asarray(mat.color_a), np.asarray(mat.color_b)
    p = mat.params
    mix: np.ndarray  # 0 -> color_a, 1 -> color_b
    if mat.pattern == "solid":
        mix = np.zeros_like(u)
    elif mat.pattern == "checker":
        hard = (np.floor(u / mat.scale) + np.floor(v / mat.scale)) % 2
        mix = 0.5 + (hard - 0.5) * _fade(footprint, 2 * mat.scale)
    elif mat.pattern == "stripes":
        hard = (np.floor(u / mat.scale) % 2).astype(np.float64)
        mix = 0.5 + (hard - 0.5) * _fade(footprint, 2 * mat.scale)
    elif mat.pattern == "grid":
        line = p.get("line", 0.08)
        fu, fv = (u / mat.scale) % 1.0, (v / mat.scale) % 1.0
        hard = ((fu < line) | (fv < line)).astype(np.float64)
        mix = line * 2 + (hard - line * 2) * _fade(footprint, mat.scale * line * 4)
    elif mat.pattern == "planks":
        board = np.floor(u / mat.scale)
        tint = _hash01(board.astype(np.int64), np.zeros_like(board, dtype=np.int64), mat.seed)
        grain = _fbm(u * 8.0, v * 0.5, mat.scale, footprint * 8.0, mat.seed + 7, octaves=2)
        seam = ((u / mat.scale) % 1.0 < 0.04).astype(np.float64)
        mix = np.clip(0.5 * tint + 0.3 * grain + 0.25 + seam * _fade(footprint, mat.scale * 0.16), 0, 1)
    elif mat.pattern == "noise":
        mix = np.clip(0.5 + _fbm(u, v, mat.scale, footprint, mat.seed, octaves=4), 0, 1)
    elif mat.pattern == "windows":
        fill_u, fill_v = p.get("fill_u", 0.5), p.get("fill_v", 0.5)
        period_v = p.get("period_v", mat.scale)
        fu, fv = (u / mat.scale) % 1.0, (v / period_v) % 1.0
        hard = ((np.abs(fu - 0.5) < fill_u / 2) & (np.abs(fv - 0.5) < fill_v / 2)).astype(np.float64)
        mean = fill_u * fill_v
        mix = mean + (hard - mean) * _fade(footprint, min(mat.scale, period_v) * 0.5)
    elif mat.pattern == "road":
        mix = _road_markings(u, v, footprint, p)
    else:
        raise ValueError(f"unknown material pattern {mat.pattern!r}")
    color = a[:, None] * (1 - mix) + b[:, None] * mix
    if mat.pattern == "road":
        verge = (u < -p["verge_left"]) | (u > p["verge_right"])
        if verge.any():
            grass = 1 + 0.8 * _fbm(u[verge], v[verge], 0.8, footprint[verge], mat.seed + 29)
            color[:, verge] = np.asarray(mat.color_c)[:, None] * grass
    if mat.roughness > 0:
        color = color * (1 + mat.roughness * _fbm(u, v, mat.scale * 0.5, footprint, mat.seed + 13))
    return np.clip(color, 0.0, 1.0)


def _road_markings(x: np.ndarray, z: np.ndarray, footprint: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Mix weight of the marking colour on a road along +z: solid edge lines and dashed lane lines.

    Args:
        x, z: world ground coordinates (metres); p: ``half_width``, ``lane_width``, ``dash``, ``gap``, ``line``.
    """
    half, lane = p["half_width"], p["lane_width"]
    line, dash, gap = p.get("line", 0.15), p.get("dash", 3.0), p.get("gap", 6.0)
    edge = np.abs(np.abs(x) - (half - 0.3)) < line / 2
    # Lane boundaries at -half + k * lane for k = 1 .. n_lanes - 1.
    rel = (x + half) / lane
    k = np.round(rel)
    n_lanes = max(1, round(2 * half / lane))
    near_boundary = (np.abs(rel - k) * lane < line / 2) & (k >= 1) & (k <= n_lanes - 1)
    dashed = near_boundary & ((z % (dash + gap)) < dash)
    hard = (edge | dashed).astype(np.float64)
    # Lines are thin: their footprint-limited contrast follows the line width.
    return hard * _fade(footprint, 4 * line) + (1 - _fade(footprint, 4 * line)) * (line / lane)


# --------------------------------------------------------------------------------------------- rendering


def render(scene: Scene) -> Render:
    """Ray-cast ``scene``: exact z-depth, object ids and a shaded sRGB image.

    Radiance = albedo * (ambient + intensity * max(0, n.l) * shadow * falloff + emission), then haze, exposure and
    the sRGB transfer curve (gamma 1 / 2.2).
    """
    camera = scene.camera
    h, w = camera.size
    dirs_image = camera.ray_directions()
    best_t, best_idx = cast_rays(scene, dirs_image)
    hit = best_idx >= 0
    dirs = dirs_image.reshape(3, -1)

    # Sky: vertical gradient in world elevation.
    elevation = np.clip(dirs[1] / np.sqrt(_dot(dirs, dirs)), 0.0, 1.0) ** 0.6
    radiance = (np.asarray(scene.sky_horizon)[:, None] * (1 - elevation)
                + np.asarray(scene.sky_zenith)[:, None] * elevation)

    # Hit pixels grouped by primitive (stable sort), so that each primitive shades one contiguous slice.
    flat_best = best_idx.reshape(-1)
    flat_idx = np.flatnonzero(hit)
    flat_idx = flat_idx[np.argsort(flat_best[flat_idx], kind="stable")]
    bounds = np.searchsorted(flat_best[flat_idx], np.arange(len(scene.primitives) + 1))
    t = best_t.reshape(-1)[flat_idx]
    d = dirs[:, flat_idx]
    points = np.asarray(camera.position, dtype=np.float64)[:, None] + t * d
    normals = np.empty_like(points)
    albedo = np.empty_like(points)
    emission = np.zeros(len(flat_idx))
    # Pixel footprint in metres: a pixel spans depth / f on a fronto-parallel surface, more when slanted.
    f_mean = 0.5 * (camera.fx + camera.fy)
    for idx, prim in enumerate(scene.primitives):
        sel = slice(bounds[idx], bounds[idx + 1])
        if bounds[idx] == bounds[idx + 1]:
            continue
        n, uv = _surface(prim, points[:, sel], d[:, sel])
        normals[:, sel] = n
        cos_view = np.abs(_dot(n, d[:, sel])) / np.sqrt(_dot(d[:, sel], d[:, sel]))
        footprint = t[sel] / f_mean / np.maximum(cos_view, 0.1)
        albedo[:, sel] = _albedo(prim.material, uv, footprint)
        emission[sel] = prim.material.emission

    light = scene.light
    if light.kind == "sun":
        falloff: np.ndarray | float = 1.0
        lambert = np.clip(_dot(normals, light.vector), 0.0, None)
    else:
        to_light = np.asarray(light.vector, dtype=np.float64)[:, None] - points
        dist = np.sqrt(_dot(to_light, to_light))
        falloff = 1.0 / (1.0 + (dist / light.falloff_m) ** 2)
        lambert = np.clip(_dot(normals, to_light) / dist, 0.0, None)
    # Only surfaces facing the light can be shadowed.
    shadow = np.zeros(len(t))
    facing = np.flatnonzero(lambert > 0)
    shadow[facing] = _shadow_visibility(scene, points[:, facing], normals[:, facing])
    color = albedo * (light.ambient + light.intensity * lambert * shadow * falloff + emission)
    if scene.haze_m > 0:
        keep = np.exp(-t / scene.haze_m)
        color = color * keep + np.asarray(scene.sky_horizon)[:, None] * (1 - keep)
    radiance[:, flat_idx] = color

    srgb = np.clip(radiance * scene.exposure, 0.0, 1.0) ** (1 / 2.2)
    rgb = np.ascontiguousarray(np.round(srgb * 255).astype(np.uint8).reshape(3, h, w).transpose(1, 2, 0))
    depth = np.where(hit & (best_t <= scene.max_depth), best_t, 0.0).astype(np.float32)
    ids = np.array([p.object_id for p in scene.primitives] + [-1], dtype=np.int32)[best_idx]
    return Render(rgb=rgb, depth=depth, object_ids=ids, hit_depth=best_t)


# --------------------------------------------------------------------------------------------- scene sampling


def _srgb_to_linear(c: np.ndarray | tuple[float, ...]) -> Vec3:
    arr = np.clip(np.asarray(c, dtype=np.float64), 0, 1) ** 2.2
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _color(rng: np.random.Generator, hue: tuple[float, float], sat: tuple[float, float], val: tuple[float, float]) -> Vec3:
    """A random colour from HSV ranges (hue in [0, 1) turns, may wrap), returned as linear RGB."""
    hh = rng.uniform(*hue) % 1.0
    s, v = rng.uniform(*sat), rng.uniform(*val)
    k = (np.array([5.0, 3.0, 1.0]) + hh * 6) % 6
    rgb = v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
    return _srgb_to_linear(rgb)


def _darker(c: Vec3, factor: float) -> Vec3:
    return (c[0] * factor, c[1] * factor, c[2] * factor)


def _any_hue(rng: np.random.Generator) -> tuple[float, float]:
    h = rng.uniform(0, 1)
    return (h, h + 0.05)


class _Ids:
    """Hands out object ids: one per object (an object may consist of several primitives)."""

    def __init__(self) -> None:
        self.next_id = 0

    def __call__(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _random_material(rng: np.random.Generator, kind: str, ids_seed: int) -> Material:
    """Materials for furniture and small objects: solid, checker, stripes or noise of a random colour."""
    a = _color(rng, _any_hue(rng), (0.1, 0.8), (0.25, 0.95))
    b = _darker(a, rng.uniform(0.55, 0.8))
    if kind == "furniture":
        pattern = rng.choice(["solid", "planks", "stripes", "checker", "noise"], p=[0.35, 0.2, 0.15, 0.15, 0.15])
    else:
        pattern = rng.choice(["solid", "checker", "stripes", "noise"])
    return Material(str(pattern), a, b, scale=float(rng.uniform(0.05, 0.25)),
                    roughness=float(rng.uniform(0.05, 0.15)), seed=ids_seed)


def _sample_indoor(rng: np.random.Generator, size: tuple[int, int]) -> Scene:
    """A room (floor, walls, ceiling) with furniture-like boxes, tables, spheres, pictures and a ceiling lamp."""
    fx, fy, cx, cy = scaled_intrinsics("indoor", size)
    width, length, height = rng.uniform(3.5, 6.0), rng.uniform(4.5, 8.0), rng.uniform(2.4, 3.0)
    x0, x1, z0, z1 = -width / 2, width / 2, -0.6, length
    ids = _Ids()
    prims: list[Primitive] = []

    floor_kind = rng.choice(["planks", "checker", "grid", "noise"])
    floor_a = _color(rng, (0.05, 0.12), (0.3, 0.7), (0.35, 0.8)) if floor_kind == "planks" else \
        _color(rng, _any_hue(rng), (0.0, 0.5), (0.3, 0.9))
    floor = Material(str(floor_kind), floor_a, _darker(floor_a, rng.uniform(0.4, 0.75)),
                     scale=float(rng.uniform(0.12, 0.5)), roughness=0.15, seed=int(rng.integers(1 << 16)),
                     params={"line": 0.05})
    prims.append(Plane((0, 0, 0), (0, 1, 0), (1, 0, 0), floor, ids()))
    ceiling = Material("noise", _color(rng, (0.0, 1.0), (0.0, 0.1), (0.85, 0.98)), _darker((0.8, 0.8, 0.8), 0.8),
                       scale=1.0, seed=int(rng.integers(1 << 16)))
    prims.append(Plane((0, height, 0), (0, -1, 0), (1, 0, 0), ceiling, ids()))
    # One wallpaper for the room: a pattern of metric size, so that its image size and gradient cue distance.
    wall_a = _color(rng, _any_hue(rng), (0.05, 0.45), (0.55, 0.95))
    wall_kind = str(rng.choice(["stripes", "grid", "noise"]))
    wall_scale = {"stripes": rng.uniform(0.08, 0.2), "grid": rng.uniform(0.2, 0.45), "noise": rng.uniform(0.2, 0.5)}[wall_kind]
    wall_b = _darker(wall_a, rng.uniform(0.6, 0.85))
    for point, normal, u_axis in (((x0, 0, 0), (1, 0, 0), (0, 0, 1)), ((x1, 0, 0), (-1, 0, 0), (0, 0, 1)),
                                  ((0, 0, z1), (0, 0, -1), (1, 0, 0)), ((0, 0, z0), (0, 0, 1), (1, 0, 0))):
        a = _darker(wall_a, rng.uniform(0.9, 1.1))
        mat = Material(wall_kind, a, wall_b, scale=float(wall_scale), roughness=0.15, seed=int(rng.integers(1 << 16)),
                       params={"line": 0.06})
        prims.append(Plane(point, normal, u_axis, mat, ids()))
        # A skirting board along the wall.
        n = np.asarray(normal, dtype=np.float64)
        if n[0] != 0:
            prims.append(Box((point[0] + 0.01 * n[0], 0.05, (z0 + z1) / 2), (0.012, 0.05, (z1 - z0) / 2), 0.0,
                             Material("solid", _darker(a, 0.6)), ids(), cast_shadow=False))
        else:
            prims.append(Box((0.0, 0.05, point[2] + 0.01 * n[2]), (width / 2, 0.05, 0.012), 0.0,
                             Material("solid", _darker(a, 0.6)), ids(), cast_shadow=False))

    cam_x = rng.uniform(-0.3, 0.3) * width
    # A hand-held Kinect: eye height, looking slightly down, nearly level.
    cam_pos = (cam_x, rng.uniform(1.3, 1.5), rng.uniform(-0.4, 0.4))
    camera = Camera(size, fx, fy, cx, cy, cam_pos, yaw=float(rng.uniform(-0.45, 0.45) - 0.5 * cam_x / width),
                    pitch=float(np.deg2rad(rng.uniform(-12, -6))), roll=float(np.deg2rad(rng.uniform(-1, 1))))

    # Wall decorations: pictures, doors, windows as thin boxes on the walls (not movable).
    for _ in range(int(rng.integers(1, 5))):
        kind = str(rng.choice(["picture", "door", "window"], p=[0.55, 0.25, 0.2]))
        wall = 2 if kind == "window" else int(rng.integers(0, 3))  # windows only on the far wall
        w_ = rng.uniform(0.4, 1.2) if kind != "door" else rng.uniform(0.8, 1.0)
        h_ = rng.uniform(0.3, 1.0) if kind == "picture" else (rng.uniform(1.9, 2.1) if kind == "door" else rng.uniform(0.8, 1.4))
        y_c = h_ / 2 if kind == "door" else rng.uniform(1.0, min(2.0, height - h_ / 2 - 0.1))
        if kind == "window":
            mat = Material("windows", _color(rng, (0.5, 0.6), (0.1, 0.4), (0.7, 1.0)), (0.95, 0.95, 0.95),
                           scale=float(w_ / 2), emission=float(rng.uniform(0.4, 1.0)),
                           params={"fill_u": 0.9, "fill_v": 0.9, "period_v": float(h_)})
        elif kind == "door":
            mat = _random_material(rng, "furniture", int(rng.integers(1 << 16)))
        else:
            mat = Material("noise", _color(rng, _any_hue(rng), (0.3, 1.0), (0.2, 1.0)),
                           _color(rng, _any_hue(rng), (0.3, 1.0), (0.2, 1.0)), scale=float(rng.uniform(0.1, 0.4)),
                           seed=int(rng.integers(1 << 16)))
        if wall == 2:
            cx_ = rng.uniform(x0 + w_ / 2 + 0.1, x1 - w_ / 2 - 0.1)
            prims.append(Box((cx_, y_c, z1 - 0.02), (w_ / 2, h_ / 2, 0.025), 0.0, mat, ids(), cast_shadow=False))
        else:
            x_w = x0 + 0.02 if wall == 0 else x1 - 0.02
            cz = rng.uniform(1.0, max(1.1, z1 - w_ / 2 - 0.1))
            prims.append(Box((x_w, y_c, cz), (0.025, h_ / 2, w_ / 2), 0.0, mat, ids(), cast_shadow=False))

    # Furniture: cabinets against walls, free-standing tables, beds/sofas, crates; spheres on the floor or tables.
    footprints: list[tuple[float, float, float]] = []  # (x, z, radius) taken on the floor

    def free(x: float, z: float, r: float) -> bool:
        inside = x0 + r < x < x1 - r and 0.2 + r < z < z1 - r
        far_from_cam = math.hypot(x - cam_pos[0], z - cam_pos[2]) > r + 1.3
        return inside and far_from_cam and all(math.hypot(x - a, z - b) > r + c for a, b, c in footprints)

    table_tops: list[tuple[float, float, float, float]] = []  # x, z, top y, usable radius
    for _ in range(int(rng.integers(3, 8))):
        kind = str(rng.choice(["cabinet", "table", "sofa", "crate"], p=[0.3, 0.3, 0.2, 0.2]))
        for _try in range(20):
            if kind == "cabinet":
                wall = int(rng.integers(0, 3))
                w_, d_, h_ = rng.uniform(0.5, 1.8), rng.uniform(0.35, 0.65), rng.uniform(0.6, 2.0)
                if wall == 2:
                    x, z, yaw = rng.uniform(x0 + w_ / 2, x1 - w_ / 2), z1 - d_ / 2 - 0.03, 0.0
                else:
                    x = x0 + d_ / 2 + 0.03 if wall == 0 else x1 - d_ / 2 - 0.03
                    z, yaw = rng.uniform(0.8, z1 - w_ / 2), math.pi / 2
                half = (w_ / 2, h_ / 2, d_ / 2)
            else:
                if kind == "table":
                    half = (rng.uniform(0.35, 0.9), rng.uniform(0.36, 0.4), rng.uniform(0.3, 0.5))
                elif kind == "sofa":
                    half = (rng.uniform(0.7, 1.1), rng.uniform(0.2, 0.32), rng.uniform(0.4, 1.0))
                else:
                    half = (rng.uniform(0.2, 0.45), rng.uniform(0.2, 0.45), rng.uniform(0.2, 0.45))
                x, z = rng.uniform(x0, x1), rng.uniform(0.8, z1)
                yaw = float(rng.uniform(-0.6, 0.6)) if rng.uniform() < 0.6 else 0.0
            r = math.hypot(half[0], half[2])
            if not free(x, z, r if kind != "cabinet" else min(r, 0.3)):
                continue
            footprints.append((x, z, r))
            mat = _random_material(rng, "furniture", int(rng.integers(1 << 16)))
            oid = ids()
            if kind == "table":
                top_y, top_t = 2 * half[1], rng.uniform(0.03, 0.06)
                prims.append(Box((x, top_y - top_t, z), (half[0], top_t, half[2]), yaw, mat, oid, movable=True))
                leg_mat = dataclasses.replace(mat, color_a=_darker(mat.color_a, 0.7), pattern="solid")
                rot = _yaw_matrix(yaw)
                for sx, sz in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
                    off = rot @ np.array([sx * (half[0] - 0.07), 0.0, sz * (half[2] - 0.07)])
                    prims.append(Box((x + off[0], (top_y - 2 * top_t) / 2, z + off[2]),
                                     (0.045, (top_y - 2 * top_t) / 2, 0.045), yaw, leg_mat, oid, movable=True))
                table_tops.append((x, z, top_y, min(half[0], half[2])))
            else:
                prims.append(Box((x, half[1], z), half, yaw, mat, oid, movable=True))
            break
    for _ in range(int(rng.integers(0, 4))):
        radius = float(rng.uniform(0.12, 0.35))
        mat = _random_material(rng, "ball", int(rng.integers(1 << 16)))
        if table_tops and rng.uniform() < 0.4:
            tx, tz, ty, tr = table_tops[int(rng.integers(len(table_tops)))]
            radius = min(radius, 0.8 * tr, 0.15)
            prims.append(Sphere((tx + rng.uniform(-0.3, 0.3) * tr, ty + radius, tz + rng.uniform(-0.3, 0.3) * tr),
                                radius, mat, ids(), movable=True))
            continue
        for _try in range(20):
            x, z = rng.uniform(x0, x1), rng.uniform(0.8, z1)
            if free(x, z, radius):
                footprints.append((x, z, radius))
                prims.append(Sphere((x, radius, z), radius, mat, ids(), movable=True))
                break

    lamp = (rng.uniform(x0 + 0.5, x1 - 0.5), height - 0.25, rng.uniform(0.5, z1 - 0.5))
    prims.append(Sphere((lamp[0], lamp[1] + 0.12, lamp[2]), 0.1, Material("solid", (0.9, 0.9, 0.85), emission=6.0),
                        ids(), cast_shadow=False))
    light = Light("point", lamp, intensity=float(rng.uniform(1.2, 2.2)), ambient=float(rng.uniform(0.2, 0.4)),
                  falloff_m=float(rng.uniform(2.5, 4.0)))
    return Scene(camera, tuple(prims), light, sky_zenith=(0.0, 0.0, 0.0), sky_horizon=(0.0, 0.0, 0.0),
                 max_depth=SETUPS["indoor"].max_depth, exposure=float(rng.uniform(0.9, 1.3)))


def _sample_road(rng: np.random.Generator, size: tuple[int, int]) -> Scene:
    """A straight street: road with lane markings, raised sidewalks, facades or hedges, cars, poles and trees."""
    fx, fy, cx, cy = scaled_intrinsics("road", size)
    ids = _Ids()
    prims: list[Primitive] = []
    n_lanes = int(rng.integers(2, 5))
    lane = float(rng.uniform(3.0, 3.6))
    half = n_lanes * lane / 2 + 0.3
    # Nothing closer than 0.5 m ahead can be seen (the lowest ray meets the road about 5 m ahead), so the long
    # boxes start there: boxes reaching behind the camera would have to be tested against every ray.
    z_near, z_far = 0.5, 160.0
    verges: dict[str, float] = {}
    cam_x = float(rng.uniform(-half + 1.5, half - 1.5) * 0.7)
    camera = Camera(size, fx, fy, cx, cy, (cam_x, float(rng.uniform(1.55, 1.75)), 0.0),
                    yaw=float(np.deg2rad(rng.uniform(-6, 6))), pitch=float(np.deg2rad(rng.uniform(-2, 1.5))),
                    roll=float(np.deg2rad(rng.uniform(-1.5, 1.5))))

    for side in (-1.0, 1.0):
        walk_w = float(rng.uniform(1.5, 4.0))
        walk_a = _color(rng, (0.05, 0.15), (0.0, 0.15), (0.5, 0.75))
        walk = Material("grid", walk_a, _darker(walk_a, 0.7), scale=float(rng.uniform(0.3, 0.6)), roughness=0.15,
                        seed=int(rng.integers(1 << 16)), params={"line": 0.06})
        xc = side * (half + walk_w / 2)
        prims.append(Box((xc, 0.075, (z_near + z_far) / 2), (walk_w / 2, 0.075, (z_far - z_near) / 2), 0.0, walk, ids(),
                         cast_shadow=False))
        edge = half + walk_w  # beyond it the ground is a grass verge (see the road material)
        verges["verge_left" if side < 0 else "verge_right"] = edge
        # Facades: a row of buildings with gaps, or hedges and trees (residential).
        street_kind = rng.choice(["buildings", "green"], p=[0.7, 0.3])
        z = float(rng.uniform(z_near, 10))
        while z < z_far:
            length = float(rng.uniform(8, 30))
            if street_kind == "buildings" and rng.uniform() < 0.85:
                setback = float(rng.uniform(0.0, 4.0))
                depth_x = float(rng.uniform(8, 15))
                bh = float(rng.uniform(5, 22))
                wall_a = _color(rng, _any_hue(rng), (0.05, 0.4), (0.45, 0.9))
                facade = Material("windows", wall_a, _color(rng, (0.55, 0.65), (0.1, 0.4), (0.1, 0.35)),
                                  scale=float(rng.uniform(2.0, 4.0)), roughness=0.15, seed=int(rng.integers(1 << 16)),
                                  params={"fill_u": float(rng.uniform(0.3, 0.6)), "fill_v": float(rng.uniform(0.35, 0.6)),
                                          "period_v": float(rng.uniform(2.8, 3.4))})
                prims.append(Box((side * (edge + setback + depth_x / 2), bh / 2, z + length / 2),
                                 (depth_x / 2, bh / 2, length / 2), 0.0, facade, ids()))
            elif street_kind == "green":
                hedge = Material("noise", _color(rng, (0.22, 0.33), (0.5, 0.8), (0.2, 0.45)), (0.02, 0.05, 0.01),
                                 scale=0.4, seed=int(rng.integers(1 << 16)))
                hh = float(rng.uniform(0.8, 2.5))
                prims.append(Box((side * (edge + 1.0), hh / 2, z + length / 2), (0.6, hh / 2, length / 2 - 0.5), 0.0,
                                 hedge, ids()))
            z += length + (float(rng.uniform(1, 8)) if rng.uniform() < 0.4 else 0.0)
        # Poles and trees on the sidewalk.
        z = float(rng.uniform(2, 15))
        while z < 90:
            x = side * (half + rng.uniform(0.3, 0.8) * walk_w)
            if rng.uniform() < 0.5:
                ph = float(rng.uniform(4, 8))
                pole = Material("solid", _color(rng, (0.0, 1.0), (0.0, 0.2), (0.3, 0.7)), roughness=0.1)
                prims.append(Box((x, ph / 2, z), (0.08, ph / 2, 0.08), 0.0, pole, ids()))
            else:
                th, cr = float(rng.uniform(1.8, 3.0)), float(rng.uniform(1.0, 2.2))
                bark = Material("noise", _color(rng, (0.05, 0.1), (0.4, 0.7), (0.2, 0.4)), (0.05, 0.03, 0.02), scale=0.2,
                                seed=int(rng.integers(1 << 16)))
                leaves = Material("noise", _color(rng, (0.2, 0.35), (0.5, 0.9), (0.25, 0.6)), (0.01, 0.04, 0.01),
                                  scale=0.35, roughness=0.3, seed=int(rng.integers(1 << 16)))
                oid = ids()
                prims.append(Box((x, th / 2, z), (0.15, th / 2, 0.15), 0.0, bark, oid))
                prims.append(Sphere((x, th + cr * 0.8, z), cr, leaves, oid))
            z += float(rng.uniform(8, 25))

    road = Material("road", _color(rng, (0.55, 0.65), (0.0, 0.1), (0.25, 0.45)), (0.75, 0.75, 0.72),
                    _color(rng, (0.2, 0.32), (0.4, 0.7), (0.25, 0.5)), scale=0.6, roughness=0.35,
                    seed=int(rng.integers(1 << 16)),
                    params={"half_width": half, "lane_width": lane, "dash": float(rng.uniform(2.0, 4.0)),
                            "gap": float(rng.uniform(4.0, 8.0)), **verges})
    prims.insert(0, Plane((0, 0, 0), (0, 1, 0), (1, 0, 0), road, ids()))

    # Cars: a body and a cabin (one object); parked at the kerb or driving in a lane.
    lanes = [-half + 0.3 + lane * (k + 0.5) for k in range(n_lanes)]
    taken: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(2, 11))):
        for _try in range(10):
            parked = rng.uniform() < 0.5
            x = (rng.choice([-1.0, 1.0]) * (half - 1.3)) if parked else float(rng.choice(lanes))
            z = float(rng.uniform(5, 70))
            if abs(x - cam_x) < 2.0 and z < 10:
                continue
            if all(abs(x - a) > 2.2 or abs(z - b) > 5.5 for a, b in taken):
                break
        else:
            continue
        taken.append((x, z))
        length, width = float(rng.uniform(3.8, 4.8)), float(rng.uniform(1.6, 1.9))
        body_h, cab_h = float(rng.uniform(0.6, 0.8)), float(rng.uniform(0.45, 0.6))
        paint = _color(rng, _any_hue(rng), (0.0, 0.9), (0.1, 0.95))
        body = Material("solid", paint, roughness=0.05)
        cabin = Material("stripes", _color(rng, (0.55, 0.65), (0.1, 0.3), (0.05, 0.2)), paint, scale=0.6,
                         params={})
        yaw = float(rng.uniform(-0.05, 0.05))
        oid = ids()
        prims.append(Box((x, 0.3 + body_h / 2, z), (width / 2, body_h / 2, length / 2), yaw, body, oid, movable=True))
        prims.append(Box((x, 0.3 + body_h + cab_h / 2, z - 0.2), (width / 2 - 0.1, cab_h / 2, length / 4 + 0.2), yaw,
                         cabin, oid, movable=True))
        # Wheels as dark boxes below the body keep the car on the road (the body floats 0.3 m up).
        tyre = Material("solid", (0.02, 0.02, 0.02))
        for sz in (-1, 1):
            prims.append(Box((x, 0.3, z + sz * (length / 2 - 0.7)), (width / 2 - 0.05, 0.3, 0.3), yaw, tyre, oid,
                             movable=True))

    elevation, azimuth = np.deg2rad(rng.uniform(20, 65)), rng.uniform(0, 2 * np.pi)
    sun = (float(np.cos(elevation) * np.sin(azimuth)), float(np.sin(elevation)), float(np.cos(elevation) * np.cos(azimuth)))
    light = Light("sun", sun, intensity=float(rng.uniform(0.8, 1.3)), ambient=float(rng.uniform(0.25, 0.45)))
    horizon = _color(rng, (0.55, 0.62), (0.05, 0.25), (0.8, 0.95))
    zenith = _color(rng, (0.57, 0.62), (0.3, 0.7), (0.6, 0.9))
    return Scene(camera, tuple(prims), light, sky_zenith=zenith, sky_horizon=horizon,
                 max_depth=SETUPS["road"].max_depth, haze_m=float(rng.uniform(150, 500)),
                 exposure=float(rng.uniform(0.85, 1.15)))


def sample_scene(setup: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> Scene:
    """Draw a random scene of ``setup`` (``indoor`` or ``road``) for an image of ``size`` = (H, W)."""
    spec = _setup(setup)
    size = spec.default_size if size is None else (int(size[0]), int(size[1]))
    if min(size) < 8:
        raise ValueError(f"render size {size} is too small (need at least 8x8 pixels)")
    return _sample_indoor(rng, size) if setup == "indoor" else _sample_road(rng, size)


def render_scene(setup: str, seed: int, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render the scene of ``seed``.

    Returns:
        ``(rgb uint8 (H, W, 3), depth float32 (H, W))``: z-depth in metres, 0 = invalid (sky, beyond max depth).
    """
    out = render(sample_scene(setup, np.random.default_rng(seed), size))
    return out.rgb, out.depth


def render_object_shift(setup: str, seed: int, shift_m: float, size: tuple[int, int] | None = None,
                        min_pixels: int = 50) -> dict[str, Any]:
    """A controlled pair: the scene of ``seed``, then the same scene with exactly one object moved in depth.

    The object is the movable one (furniture, ball, car) that covers the most pixels among those that can be
    moved by ``shift_m`` metres (positive = away from the camera) along the horizontal line from the camera to
    it without leaving the room/road or touching another object. It casts no shadow in either render, so that
    the two images differ only where the object is in one of them.

    Returns:
        dict with ``rgb_a, depth_a, rgb_b, depth_b`` (as :func:`render_scene`), ``mask_a, mask_b`` (bool (H, W):
        the object's pixels in each render), ``object_id`` and ``shift_m``.

    Raises:
        ValueError: if no object of this scene can be moved that far (try another seed or a smaller shift).
    """
    scene = sample_scene(setup, np.random.default_rng(seed), size)
    base = render(scene)
    cam = np.asarray(scene.camera.position)
    by_object: dict[int, list[int]] = {}
    for idx, prim in enumerate(scene.primitives):
        if prim.movable:
            by_object.setdefault(prim.object_id, []).append(idx)
    candidates = sorted(by_object, key=lambda oid: -int((base.object_ids == oid).sum()))
    for oid in candidates:
        if (base.object_ids == oid).sum() < min_pixels:
            break
        members = by_object[oid]
        centre = np.mean([np.asarray(scene.primitives[i].center) for i in members], axis=0)
        direction = np.array([centre[0] - cam[0], 0.0, centre[2] - cam[2]])
        direction /= np.linalg.norm(direction)
        offset = shift_m * direction
        moved = list(scene.primitives)
        for i in members:
            prim = moved[i]
            moved[i] = dataclasses.replace(prim, center=tuple(float(c) for c in np.asarray(prim.center) + offset),
                                           cast_shadow=False)
        still = dataclasses.replace(scene, primitives=tuple(
            dataclasses.replace(p, cast_shadow=False) if i in members else p for i, p in enumerate(scene.primitives)))
        shifted = dataclasses.replace(scene, primitives=tuple(moved))
        if not _placement_ok(scene, members, offset):
            continue
        a, b = render(still), render(shifted)
        mask_a, mask_b = a.object_ids == oid, b.object_ids == oid
        if mask_b.sum() < min_pixels:
            continue
        return {"rgb_a": a.rgb, "depth_a": a.depth, "rgb_b": b.rgb, "depth_b": b.depth, "mask_a": mask_a,
                "mask_b": mask_b, "object_id": oid, "shift_m": float(shift_m)}
    raise ValueError(f"{setup} scene of seed {seed}: no visible object can be moved by {shift_m} m; "
                     "try another seed or a smaller shift")


def _footprint_xz(prims: list[Primitive]) -> tuple[float, float, float]:
    """(x, z, radius) of a circle on the floor enclosing the primitives."""
    pts = []
    for p in prims:
        bound = _bounding_sphere(p)
        if bound is None:
            continue
        c, r = bound
        if isinstance(p, Box):  # the horizontal extent of a box is smaller than its bounding sphere
            r = math.hypot(p.half[0], p.half[2])
        pts.append((c[0], c[2], r))
    arr = np.asarray(pts)
    x, z = arr[:, 0].mean(), arr[:, 1].mean()
    return x, z, float(np.max(np.hypot(arr[:, 0] - x, arr[:, 1] - z) + arr[:, 2]))


def _placement_ok(scene: Scene, members: list[int], offset: np.ndarray) -> bool:
    """Whether moving ``members`` by ``offset`` keeps them clear of the camera, the walls and other objects."""
    moving = [scene.primitives[i] for i in members]
    x, z, r = _footprint_xz(moving)
    x, z = x + offset[0], z + offset[2]
    cam = scene.camera.position
    if math.hypot(x - cam[0], z - cam[2]) < r + 0.7:
        return False
    # Walls (indoor) are vertical planes: stay on their inner side.
    for p in scene.primitives:
        if isinstance(p, Plane) and abs(p.normal[1]) < 0.5:
            n = np.asarray(p.normal)
            if (np.array([x, 0.0, z]) - np.asarray(p.point)) @ n < r:
                return False
    others: dict[int, list[Primitive]] = {}
    for i, p in enumerate(scene.primitives):
        if i not in members and not isinstance(p, Plane) and p.movable:
            others.setdefault(p.object_id, []).append(p)
    for group in others.values():
        ox, oz, orad = _footprint_xz(group)
        if math.hypot(x - ox, z - oz) < r + orad:
            return False
    return True


# --------------------------------------------------------------------------------------------- datasets


def image_seed(base_seed: int, split: str, index: int) -> int:
    """The seed of image ``index`` of ``split``: a function of (base seed, split name, index) only."""
    split_key = zlib.crc32(split.encode("utf-8"))
    state = np.random.SeedSequence([int(base_seed), split_key, int(index)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def image_id(split: str, index: int) -> str:
    """``train_000123``-style ids (zero-padded so that they sort in index order)."""
    return f"{split}_{index:06d}"


def generate_dataset(root: str | Path, name: str, setup: str, n_train: int, n_test: int, seed: int,
                     size: tuple[int, int] | None = None, progress: bool = True) -> DatasetInfo:
    """Render ``n_train`` + ``n_test`` scenes and write the prepared-dataset layout of :mod:`depthxai.data.io`.

    Writes ``<root>/rgb/<id>.png``, ``<root>/depth/<id>.png`` (z-depth * ``depth_scale``, 0 = invalid),
    ``index.csv`` and, last, ``dataset.json`` (so a crash never leaves a dataset that looks complete).

    Returns:
        The :class:`DatasetInfo` written.
    """
    spec = _setup(setup)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
    size = spec.default_size if size is None else (int(size[0]), int(size[1]))
    root = Path(root)
    rows = []
    jobs = [("train", i) for i in range(n_train)] + [("test", i) for i in range(n_test)]
    for split, i in tqdm(jobs, desc=f"render {name}", unit="img", disable=not progress):
        rgb, depth = render_scene(setup, image_seed(seed, split, i), size)
        iid = image_id(split, i)
        rel_rgb, rel_depth = f"rgb/{iid}.png", f"depth/{iid}.png"
        write_rgb(root / rel_rgb, rgb)
        write_depth(root / rel_depth, depth, spec.depth_scale)
        rows.append({"id": iid, "split": split, "rgb": rel_rgb, "depth": rel_depth})
    write_index(root, pd.DataFrame(rows, columns=["id", "split", "rgb", "depth"]))
    fx, fy, cx, cy = scaled_intrinsics(setup, size)
    info = DatasetInfo(
        name=name, kind="synthetic", depth_scale=spec.depth_scale, min_depth=1e-3, max_depth=spec.max_depth,
        eval_crop="none", image_size=size, camera={"fx": fx, "fy": fy, "cx": cx, "cy": cy},
        extra={"setup": setup, "seed": int(seed), "n_train": int(n_train), "n_test": int(n_test),
               "generator": "depthxai.data.synthetic", "generator_version": GENERATOR_VERSION},
    )
    write_dataset_info(root, info)
    return info
