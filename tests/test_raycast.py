"""The whole-image ray caster against brute force: every pixel (or point) against every primitive, no culling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from depthxai.data import synthetic as S
from depthxai.data.io import read_rgb, write_rgb
from depthxai.data.synthetic import raycast as R

SIZES = {"indoor": (30, 40), "road": (24, 80)}


def _brute_force_cast(scene: S.Scene) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit per pixel: a loop over primitives in index order, each tested on the whole image, replacing
    only on a strictly smaller depth (so equal depths keep the lower index)."""
    table = R.PrimitiveTable.from_primitives(scene.primitives)
    flat = scene.camera.ray_directions().reshape(3, -1)
    origin = np.asarray(scene.camera.position, dtype=np.float64)
    best_t = np.full(flat.shape[1], np.inf)
    best_idx = np.full(flat.shape[1], -1)
    for k in range(len(scene.primitives)):
        t = R.intersect(table, int(table.kind[k]), np.full(flat.shape[1], k), origin, (flat[0], flat[1], flat[2]))
        closer = t < best_t
        best_t[closer], best_idx[closer] = t[closer], k
    return best_t.reshape(scene.camera.size), best_idx.reshape(scene.camera.size)


@pytest.mark.parametrize("setup,seed", [("indoor", 0), ("indoor", 3), ("road", 1), ("road", 4)])
def test_cast_rays_equals_testing_every_pixel_against_every_primitive(setup: str, seed: int) -> None:
    scene = S.sample_scene(setup, np.random.default_rng(seed), SIZES[setup])
    depth, index = S.cast_rays(scene)
    ref_depth, ref_index = _brute_force_cast(scene)
    # Culling by screen rectangles drops only pairs that cannot hit: the same depths and indices, bit for bit.
    assert depth.tobytes() == ref_depth.tobytes()
    np.testing.assert_array_equal(index, ref_index)
    assert (index >= 0).mean() > 0.5


def test_equal_depths_go_to_the_lower_primitive_index() -> None:
    grey = S.Material("solid", (0.5, 0.5, 0.5))
    wall = S.Plane((0.0, 0.0, 4.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), grey)
    box = S.Box((0.0, 0.0, 4.5), (0.5, 0.5, 0.5), 0.0, grey)  # its front face lies in the wall plane
    camera = S.Camera((21, 21), 20.0, 20.0, 10.0, 10.0, (0.0, 0.0, 0.0))
    light = S.Light("sun", (0.0, 1.0, 0.0), 1.0, 0.3)
    for prims in ((wall, box), (box, wall)):
        depth, index = S.cast_rays(S.Scene(camera, prims, light, (0.2, 0.3, 0.8), (0.8, 0.8, 0.9), 100.0))
        assert depth[10, 10] == 4.0  # the optical axis meets both at exactly 4 m: the first listed wins
        assert index[10, 10] == 0


def _brute_force_shadow(scene: S.Scene, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Shadow test of every point against every caster, exactly, no culling."""
    table = R.PrimitiveTable.from_primitives(scene.primitives)
    origins = points + R.SHADOW_BIAS * normals
    light = scene.light
    if light.kind == "sun":
        dirs = np.repeat(np.asarray(light.vector, dtype=np.float64)[:, None], points.shape[1], axis=1)
        reach = np.inf
    else:
        dirs = np.asarray(light.vector, dtype=np.float64)[:, None] - origins
        reach = 1.0
    lit = np.ones(points.shape[1])
    for k in np.flatnonzero(table.cast_shadow):
        prim = np.full(points.shape[1], k)
        t = R.intersect(table, int(table.kind[k]), prim, (origins[0], origins[1], origins[2]),
                        (dirs[0], dirs[1], dirs[2]))
        lit[t < reach] = 0.0
    return lit


@pytest.mark.parametrize("setup,seed", [("indoor", 2), ("indoor", 7), ("road", 0), ("road", 5)])
def test_shadow_culling_keeps_every_blocked_point(setup: str, seed: int) -> None:
    scene = S.sample_scene(setup, np.random.default_rng(seed), SIZES[setup])
    table = R.PrimitiveTable.from_primitives(scene.primitives)
    depth, index = S.cast_rays(scene, table=table)
    pix = np.flatnonzero(index.reshape(-1) >= 0)
    flat = scene.camera.ray_directions().reshape(3, -1)[:, pix]
    points = np.asarray(scene.camera.position)[:, None] + depth.reshape(-1)[pix] * flat
    prim = index.reshape(-1)[pix]
    normals = np.empty_like(points)
    for kind in (R.PLANE, R.BOX, R.SPHERE):
        sel = np.flatnonzero(table.kind[prim] == kind)
        normals[:, sel] = R.surface(table, kind, prim[sel], points[:, sel], flat[:, sel])[0]
    lit = R.shadow_visibility(scene, table, points, normals, pix)
    expected = _brute_force_shadow(scene, points, normals)
    np.testing.assert_array_equal(lit, expected)
    assert 0 < expected.sum() < len(expected) or setup == "indoor"  # road scenes have both sun and shade


def test_screen_rects_contain_every_hit_pixel() -> None:
    scene = S.sample_scene("road", np.random.default_rng(3), SIZES["road"])
    table = R.PrimitiveTable.from_primitives(scene.primitives)
    _, index = _brute_force_cast(scene)
    bounded = np.flatnonzero(table.kind != R.PLANE)
    rects = R.screen_rects(scene.camera, table, bounded)
    for k, (r0, r1, c0, c1) in zip(bounded, rects):
        rows, cols = np.nonzero(index == k)
        assert np.all((rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)), k


def test_material_table_rejects_unknown_patterns() -> None:
    with pytest.raises(ValueError, match="unknown material pattern 'marble'"):
        S.render(S.Scene(S.Camera((8, 8), 8.0, 8.0, 3.5, 3.5, (0.0, 0.0, 0.0)),
                         (S.Sphere((0.0, 0.0, 3.0), 1.0, S.Material("marble")),),
                         S.Light("sun", (0.0, 1.0, 0.0), 1.0, 0.3), (0.2, 0.3, 0.8), (0.8, 0.8, 0.9), 100.0))


def test_png_compress_level_changes_the_file_not_the_pixels(tmp_path) -> None:
    rgb, _ = S.render_scene("road", 1, (40, 128))
    write_rgb(tmp_path / "fast.png", rgb, compress_level=1)
    write_rgb(tmp_path / "small.png", rgb)
    np.testing.assert_array_equal(read_rgb(tmp_path / "fast.png"), rgb)
    np.testing.assert_array_equal(read_rgb(tmp_path / "small.png"), rgb)
    assert (tmp_path / "fast.png").stat().st_size > (tmp_path / "small.png").stat().st_size
    # PIL's default is level 6: the default write and an explicit 6 are the same bytes.
    Image.fromarray(rgb).save(tmp_path / "six.png", format="PNG", compress_level=6)
    assert (tmp_path / "six.png").read_bytes() == (tmp_path / "small.png").read_bytes()
