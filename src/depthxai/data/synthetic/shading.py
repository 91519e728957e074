"""Shading: exact z-depth, object ids and a shaded sRGB image of a scene (:func:`render`), for the whole image
at once."""

from __future__ import annotations

import numpy as np

from depthxai.data.synthetic.materials import PATTERNS, MaterialTable, albedo
from depthxai.data.synthetic.raycast import PrimitiveTable, cast_rays, shadow_visibility, surface
from depthxai.data.synthetic.sampling import sample_scene
from depthxai.data.synthetic.scene import Render, Scene

#: Number of primitive kinds (:data:`~depthxai.data.synthetic.raycast.PLANE`, ``BOX``, ``SPHERE``).
_KINDS = 3


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def render(scene: Scene) -> Render:
    """Ray-cast ``scene``: exact z-depth, object ids and a shaded sRGB image.

    Radiance = albedo * (ambient + intensity * max(0, n.l) * shadow * falloff + emission), then haze, exposure and
    the sRGB transfer curve (gamma 1 / 2.2). Hit pixels are grouped by (pattern, primitive kind), so that surface
    geometry runs once per kind and each material pattern once, over contiguous slices.
    """
    camera = scene.camera
    h, w = camera.size
    table = PrimitiveTable.from_primitives(scene.primitives)
    materials = MaterialTable.from_materials([p.material for p in scene.primitives])
    dirs_image = camera.ray_directions()
    best_t, best_idx = cast_rays(scene, dirs_image, table)
    dirs = dirs_image.reshape(3, -1)
    flat_best = best_idx.reshape(-1)
    radiance = np.empty((3, h * w))

    # Sky: vertical gradient in world elevation.
    sky = np.flatnonzero(flat_best < 0)
    if len(sky):
        up = dirs[:, sky]
        elevation = np.clip(up[1] / np.sqrt(_dot(up, up)), 0.0, 1.0) ** 0.6
        radiance[:, sky] = (np.asarray(scene.sky_horizon)[:, None] * (1 - elevation)
                            + np.asarray(scene.sky_zenith)[:, None] * elevation)

    # Hit pixels grouped by (pattern, kind): a stable radix sort on small integer keys.
    key_of_prim = (materials.pattern.astype(np.int16) * _KINDS + table.kind).astype(np.int16)
    pix = np.flatnonzero(flat_best >= 0)
    pix = pix[np.argsort(key_of_prim[flat_best[pix]], kind="stable")]
    prim = flat_best[pix]
    keys = key_of_prim[prim]
    bounds = np.searchsorted(keys, np.arange(len(PATTERNS) * _KINDS + 1))
    t = best_t.reshape(-1)[pix]
    d = dirs.take(pix, axis=1)
    points = np.asarray(camera.position, dtype=np.float64)[:, None] + t * d
    normals = np.empty_like(points)
    uv = np.empty((2, len(pix)))
    for key in np.flatnonzero(bounds[1:] > bounds[:-1]):
        sel = slice(bounds[key], bounds[key + 1])
        normals[:, sel], uv[:, sel] = surface(table, int(key) % _KINDS, prim[sel], points[:, sel], d[:, sel])
    # Pixel footprint in metres: a pixel spans depth / f on a fronto-parallel surface, more when slanted.
    cos_view = np.abs(_dot(normals, d)) / np.sqrt(_dot(d, d))
    footprint = t / (0.5 * (camera.fx + camera.fy)) / np.maximum(cos_view, 0.1)
    base = albedo(materials, prim, uv, footprint)
    emission = materials.emission[prim]

    light = scene.light
    if light.kind == "sun":
        falloff: np.ndarray | float = 1.0
        lambert = np.clip(_dot(normals, np.asarray(light.vector, dtype=np.float64)), 0.0, None)
    else:
        to_light = np.asarray(light.vector, dtype=np.float64)[:, None] - points
        dist = np.sqrt(_dot(to_light, to_light))
        falloff = 1.0 / (1.0 + (dist / light.falloff_m) ** 2)
        lambert = np.clip(_dot(normals, to_light) / dist, 0.0, None)
    # Only surfaces facing the light can be shadowed.
    shadow = np.zeros(len(t))
    facing = np.flatnonzero(lambert > 0)
    shadow[facing] = shadow_visibility(scene, table, points[:, facing], normals[:, facing], pix[facing],
                                       prim[facing])
    color = base * (light.ambient + light.intensity * lambert * shadow * falloff + emission)
    if scene.haze_m > 0:
        keep = np.exp(-t / scene.haze_m)
        color = color * keep + np.asarray(scene.sky_horizon)[:, None] * (1 - keep)
    radiance[:, pix] = color

    srgb = np.clip(radiance * scene.exposure, 0.0, 1.0) ** (1 / 2.2)
    rgb = np.ascontiguousarray(np.round(srgb * 255).astype(np.uint8).reshape(3, h, w).transpose(1, 2, 0))
    hit = best_idx >= 0
    depth = np.where(hit & (best_t <= scene.max_depth), best_t, 0.0).astype(np.float32)
    ids = np.append(table.object_id, np.int32(-1))[best_idx]
    return Render(rgb=rgb, depth=depth, object_ids=ids, hit_depth=best_t)


def render_scene(setup: str, seed: int, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render the scene of ``seed``.

    Returns:
        ``(rgb uint8 (H, W, 3), depth float32 (H, W))``: z-depth in metres, 0 = invalid (sky, beyond max depth).
    """
    out = render(sample_scene(setup, np.random.default_rng(seed), size))
    return out.rgb, out.depth
