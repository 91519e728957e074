"""The object-shift control: one scene rendered twice, with exactly one object moved in depth."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from depthxai.data.synthetic.sampling import sample_scene
from depthxai.data.synthetic.scene import Box, Plane, Primitive, Scene, Sphere
from depthxai.data.synthetic.shading import render


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
    bodies: dict[int, Box | Sphere] = {}  # the movable primitives by index
    for idx, prim in enumerate(scene.primitives):
        if prim.movable:
            assert not isinstance(prim, Plane), "sample_scene never makes a plane movable"
            bodies[idx] = prim
            by_object.setdefault(prim.object_id, []).append(idx)
    candidates = sorted(by_object, key=lambda oid: -int((base.object_ids == oid).sum()))
    for oid in candidates:
        if (base.object_ids == oid).sum() < min_pixels:
            break
        members = by_object[oid]
        centre = np.mean([np.asarray(bodies[i].center) for i in members], axis=0)
        direction = np.array([centre[0] - cam[0], 0.0, centre[2] - cam[2]])
        direction /= np.linalg.norm(direction)
        offset = shift_m * direction
        moved = list(scene.primitives)
        for i in members:
            body = bodies[i]
            x, y, z = (float(c) for c in np.asarray(body.center) + offset)
            moved[i] = dataclasses.replace(body, center=(x, y, z), cast_shadow=False)
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
        if isinstance(p, Box):  # the horizontal extent of a box
            pts.append((p.center[0], p.center[2], math.hypot(p.half[0], p.half[2])))
        elif isinstance(p, Sphere):
            pts.append((p.center[0], p.center[2], p.radius))
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

