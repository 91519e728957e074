"""Scene sampling: random rooms (NYU-like) and streets (KITTI-like) of plausible metric size.

Every random draw comes from the generator passed in, in a fixed order, so a seed always gives the same scene.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from depthxai.data.synthetic.scene import (
    SETUPS,
    Box,
    Camera,
    Light,
    Material,
    Plane,
    Primitive,
    Scene,
    Sphere,
    Vec3,
    get_setup,
    scaled_intrinsics,
    yaw_matrix,
)


def _srgb_to_linear(c: np.ndarray | tuple[float, ...]) -> Vec3:
    arr = np.clip(np.asarray(c, dtype=np.float64), 0, 1) ** 2.2
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _color(rng: np.random.Generator, hue: tuple[float, float], sat: tuple[float, float],
           val: tuple[float, float]) -> Vec3:
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
    wall_scale = {"stripes": rng.uniform(0.08, 0.2), "grid": rng.uniform(0.2, 0.45),
                  "noise": rng.uniform(0.2, 0.5)}[wall_kind]
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
        h_ = rng.uniform(0.3, 1.0) if kind == "picture" else (
            rng.uniform(1.9, 2.1) if kind == "door" else rng.uniform(0.8, 1.4))
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
                rot = yaw_matrix(yaw)
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
                                  params={"fill_u": float(rng.uniform(0.3, 0.6)),
                                          "fill_v": float(rng.uniform(0.35, 0.6)),
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
                bark = Material("noise", _color(rng, (0.05, 0.1), (0.4, 0.7), (0.2, 0.4)), (0.05, 0.03, 0.02),
                                scale=0.2, seed=int(rng.integers(1 << 16)))
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
    sun = (float(np.cos(elevation) * np.sin(azimuth)), float(np.sin(elevation)),
           float(np.cos(elevation) * np.cos(azimuth)))
    light = Light("sun", sun, intensity=float(rng.uniform(0.8, 1.3)), ambient=float(rng.uniform(0.25, 0.45)))
    horizon = _color(rng, (0.55, 0.62), (0.05, 0.25), (0.8, 0.95))
    zenith = _color(rng, (0.57, 0.62), (0.3, 0.7), (0.6, 0.9))
    return Scene(camera, tuple(prims), light, sky_zenith=zenith, sky_horizon=horizon,
                 max_depth=SETUPS["road"].max_depth, haze_m=float(rng.uniform(150, 500)),
                 exposure=float(rng.uniform(0.85, 1.15)))


def sample_scene(setup: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> Scene:
    """Draw a random scene of ``setup`` (``indoor`` or ``road``) for an image of ``size`` = (H, W)."""
    spec = get_setup(setup)
    size = spec.default_size if size is None else (int(size[0]), int(size[1]))
    if min(size) < 8:
        raise ValueError(f"render size {size} is too small (need at least 8x8 pixels)")
    return _sample_indoor(rng, size) if setup == "indoor" else _sample_road(rng, size)

