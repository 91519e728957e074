"""Scene description: camera set-ups, primitives, materials (as parameters), camera, light, scene, render result.

Pure data: nothing here ray-casts or draws (see :mod:`.raycast`, :mod:`.materials`, :mod:`.render`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Vec3 = tuple[float, float, float]

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


def get_setup(setup: str) -> SetupSpec:
    """The :class:`SetupSpec` of ``setup`` (``indoor`` or ``road``); ``ValueError`` naming the choices otherwise."""
    try:
        return SETUPS[setup]
    except KeyError:
        raise ValueError(f"unknown synthetic setup {setup!r}; choose one of {sorted(SETUPS)}") from None


def scaled_intrinsics(setup: str, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The set-up's intrinsics ``(fx, fy, cx, cy)`` rescaled to an image of ``size`` = (H, W).

    Pixel centres sit at integer coordinates, so a principal point scales as ``(c + 0.5) * s - 0.5``.
    """
    spec = get_setup(setup)
    sy, sx = size[0] / spec.native_size[0], size[1] / spec.native_size[1]
    fx, fy, cx, cy = spec.intrinsics
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


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


def yaw_matrix(yaw: float) -> np.ndarray:
    """Local-to-world rotation ``(3, 3)`` of a box turned by ``yaw`` (columns: the local axes in world coordinates)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


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
        return (rot[:, 0, None, None] * u[None, None, :] + rot[:, 1, None, None] * v[None, :, None]
                + rot[:, 2, None, None])

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

