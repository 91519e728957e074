"""The procedural renderer: exact z-depth, occlusion, determinism, dataset layout, controlled object shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthxai.data import synthetic as S
from depthxai.data.io import read_dataset_info, read_depth, read_index, read_rgb

SMALL = {"indoor": (36, 48), "road": (32, 104)}


def _scene(prims: list[S.Primitive], size: tuple[int, int] = (40, 56), height: float = 0.0,
           pitch: float = 0.0, yaw: float = 0.0, max_depth: float = 100.0) -> S.Scene:
    """A hand-built scene: camera at (0, height, 0), intrinsics with the principal point on a pixel centre."""
    h, w = size
    camera = S.Camera(size, fx=50.0, fy=45.0, cx=(w - 1) / 2, cy=(h - 1) / 2, position=(0.0, height, 0.0),
                      pitch=pitch, yaw=yaw)
    light = S.Light("sun", (0.0, 1.0, 0.0), intensity=1.0, ambient=0.3)
    return S.Scene(camera, tuple(prims), light, sky_zenith=(0.2, 0.3, 0.8), sky_horizon=(0.8, 0.8, 0.9),
                   max_depth=max_depth)


def _pixel_rays(camera: S.Camera) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions in the (unrotated) camera frame, x right, y down, z forward: (H, W, 3); and v rows."""
    h, w = camera.size
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], axis=-1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True), v


GREY = S.Material("solid", (0.5, 0.5, 0.5))


def test_fronto_parallel_plane_has_constant_z_depth_not_ray_length() -> None:
    scene = _scene([S.Plane((0.0, 0.0, 3.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), GREY)])
    out = S.render(scene)
    # z-depth: 3 m everywhere; the ray length would grow to 3 / cos(angle) towards the corners.
    np.testing.assert_allclose(out.depth, 3.0, rtol=1e-6)
    rays, _ = _pixel_rays(scene.camera)
    assert 3.0 / rays[0, 0, 2] > 3.3  # the corner ray is long: the test would catch ray length
    assert out.depth.dtype == np.float32 and out.rgb.dtype == np.uint8 and out.rgb.shape == (40, 56, 3)


def test_ground_plane_depth_matches_perspective_formula() -> None:
    height = 1.65
    scene = _scene([S.Plane((0.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), GREY)], height=height)
    out = S.render(scene)
    cam = scene.camera
    v = np.arange(cam.size[0], dtype=np.float64)[:, None] * np.ones((1, cam.size[1]))
    below = v > cam.cy
    expected = height * cam.fy / (v - cam.cy)  # z-depth of the ground seen in row v, any column
    np.testing.assert_allclose(out.hit_depth[below], expected[below], rtol=1e-9)
    within = below & (expected <= scene.max_depth)
    np.testing.assert_allclose(out.depth[within], expected[within], rtol=1e-6)
    assert np.all(out.depth[below & ~within] == 0)  # beyond max_depth: no ground truth
    # Rows at and above the horizon see the sky: no ground truth.
    assert np.all(out.depth[~below] == 0) and np.all(out.object_ids[~below] == -1)


def test_sphere_depth_and_silhouette_match_analytic_intersection() -> None:
    center, radius = np.array([0.3, -0.2, 4.0]), 0.8
    scene = _scene([S.Sphere(tuple(center), radius, GREY, object_id=7)])
    out = S.render(scene)
    rays, _ = _pixel_rays(scene.camera)
    # Independent solution with unit rays from the origin: s^2 - 2 s (r.c) + |c|^2 - R^2 = 0; the camera's y axis
    # points down, so the world centre (y up) is (x, -y, z) in the camera frame.
    c_cam = center * np.array([1.0, -1.0, 1.0])
    b = rays @ c_cam
    disc = b * b - (c_cam @ c_cam - radius**2)
    hit = disc >= 0
    s = b - np.sqrt(np.where(hit, disc, 0.0))
    expected = s * rays[..., 2]
    # Pixels exactly on the silhouette may round either way; away from it the masks must agree.
    clear = np.abs(disc) > 1e-3
    np.testing.assert_array_equal((out.object_ids == 7)[clear], hit[clear])
    assert hit.sum() > 50
    np.testing.assert_allclose(out.depth[hit & clear], expected[hit & clear], rtol=1e-5)


def test_rotated_box_depth_on_the_optical_axis() -> None:
    # A unit cube turned 45 degrees about the vertical axis: the optical axis meets its front edge at 4 - sqrt(2).
    size = (41, 57)  # odd, so that the principal point is a pixel centre
    box = S.Box((0.0, 0.0, 4.0), (1.0, 1.0, 1.0), math.pi / 4, GREY, object_id=3)
    out = S.render(_scene([box], size=size))
    assert out.depth[20, 28] == pytest.approx(4.0 - math.sqrt(2.0), rel=1e-6)
    axis_aligned = S.render(_scene([S.Box((0.0, 0.0, 4.0), (1.0, 1.0, 1.0), 0.0, GREY)], size=size))
    assert axis_aligned.depth[20, 28] == pytest.approx(3.0, rel=1e-6)
    # A pixel right of centre sees the cube's local +x face: unit normal n = (cos 45, 0, -sin 45), 1 m from the
    # centre. Its ray meets (x/z * z, 0, z) with ((x/z * z, 0, z - 4) . n) = 1.
    x_over_z = (40 - 28.0) / 50.0
    n = np.array([math.sqrt(0.5), 0.0, -math.sqrt(0.5)])
    z = (1.0 + 4.0 * n[2]) / (x_over_z * n[0] + n[2])
    assert 4.0 - math.sqrt(2.0) < z < 4.0
    assert out.depth[20, 40] == pytest.approx(z, rel=1e-6)


def test_occlusion_sphere_in_front_of_wall() -> None:
    wall = S.Plane((0.0, 0.0, 6.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), GREY, object_id=1)
    sphere = S.Sphere((0.0, 0.0, 3.0), 0.5, S.Material("solid", (0.9, 0.1, 0.1)), object_id=2)
    out = S.render(_scene([wall, sphere], size=(41, 57)))  # odd size: one pixel ray on the optical axis
    on_sphere = out.object_ids == 2
    assert on_sphere.sum() > 20 and (out.object_ids == 1).sum() > 500
    # The sphere's pixels carry the sphere's depth (in front of the wall: 2.5 m at the centre), the rest the wall's.
    assert np.all(out.depth[on_sphere] < 3.0) and out.depth[on_sphere].min() == pytest.approx(2.5, rel=1e-4)
    np.testing.assert_allclose(out.depth[~on_sphere], 6.0, rtol=1e-6)
    # The image sees it too: the red sphere differs from the grey wall.
    assert out.rgb[on_sphere][:, 0].mean() > out.rgb[~on_sphere][:, 0].mean() + 30


def test_max_depth_invalidates_far_points() -> None:
    scene = _scene([S.Plane((0.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), GREY)], height=1.0, max_depth=5.0)
    out = S.render(scene)
    far = np.isfinite(out.hit_depth) & (out.hit_depth > 5.0)
    assert far.any() and np.all(out.depth[far] == 0)
    assert np.all(out.depth[~far & np.isfinite(out.hit_depth)] > 0)


@pytest.mark.parametrize("setup", ["indoor", "road"])
def test_render_is_deterministic_per_seed(setup: str) -> None:
    rgb_a, depth_a = S.render_scene(setup, 11, SMALL[setup])
    rgb_b, depth_b = S.render_scene(setup, 11, SMALL[setup])
    assert rgb_a.tobytes() == rgb_b.tobytes() and depth_a.tobytes() == depth_b.tobytes()
    rgb_c, depth_c = S.render_scene(setup, 12, SMALL[setup])
    assert rgb_a.tobytes() != rgb_c.tobytes() and depth_a.tobytes() != depth_c.tobytes()


@pytest.mark.parametrize("setup", ["indoor", "road"])
def test_depth_ranges_and_shapes(setup: str) -> None:
    spec = S.SETUPS[setup]
    for seed in range(3):
        rgb, depth = S.render_scene(setup, seed, SMALL[setup])
        assert rgb.shape == (*SMALL[setup], 3) and rgb.dtype == np.uint8
        assert depth.shape == SMALL[setup] and depth.dtype == np.float32
        valid = depth > 0
        assert np.all(depth >= 0) and np.all(depth[valid] <= spec.max_depth)
        assert valid.mean() > 0.3
        assert rgb.std() > 10  # not a blank image
        if setup == "road":
            # Sky at the top has no ground truth; the road at the bottom does.
            assert not valid[0].all() and valid[-1].all()
        else:
            assert valid.all()  # a closed room: every ray hits something within 10 m


def test_default_sizes_and_intrinsics() -> None:
    assert S.scaled_intrinsics("indoor", (480, 640)) == pytest.approx(S.SETUPS["indoor"].intrinsics)
    fx, fy, cx, cy = S.scaled_intrinsics("road", (188, 624))
    assert fx == pytest.approx(721.5377 * 624 / 1242) and fy == pytest.approx(721.5377 * 188 / 375)
    # Pixel centres at integers: the image centre maps to the image centre.
    assert S.scaled_intrinsics("indoor", (240, 320))[2] == pytest.approx((325.5824 + 0.5) / 2 - 0.5)
    rgb, depth = S.render_scene("indoor", 0)
    assert rgb.shape == (240, 320, 3) and depth.shape == (240, 320)
    with pytest.raises(ValueError, match="unknown synthetic setup"):
        S.render_scene("forest", 0)


def test_scene_seeds_depend_on_split_and_index_only() -> None:
    seeds = {S.scene_seed(0, split, i) for split in ("train", "test") for i in range(50)}
    assert len(seeds) == 100
    assert S.scene_seed(3, "train", 5) == S.scene_seed(3, "train", 5) != S.scene_seed(4, "train", 5)
    assert S.image_id("train", 123) == "train_000123"


def test_generate_dataset_layout_reads_back(tmp_path) -> None:
    size = (24, 32)
    info = S.generate_dataset(tmp_path / "ds", "synthindoor", "indoor", n_train=3, n_test=2, seed=5, size=size,
                              progress=False)
    back = read_dataset_info(tmp_path / "ds")
    assert back == info
    assert (back.name, back.kind, back.depth_scale, back.max_depth, back.eval_crop, back.image_size) == (
        "synthindoor", "synthetic", 1000.0, 10.0, "none", size)
    assert back.camera["fx"] == pytest.approx(518.8579 * 32 / 640)
    index = read_index(tmp_path / "ds")
    assert list(index["id"]) == ["test_000000", "test_000001", "train_000000", "train_000001", "train_000002"]
    assert list(read_index(tmp_path / "ds", "train")["id"]) == ["train_000000", "train_000001", "train_000002"]
    row = index[index["id"] == "train_000001"].iloc[0]
    rgb, depth = S.render_scene("indoor", S.scene_seed(5, "train", 1), size)
    np.testing.assert_array_equal(read_rgb(tmp_path / "ds" / row["rgb"]), rgb)
    # Millimetre PNG: within half a millimetre of the exact depth.
    np.testing.assert_allclose(read_depth(tmp_path / "ds" / row["depth"], 1000.0), depth, atol=0.5e-3 + 1e-6)

    # Adding images does not change the earlier ones; the road set uses KITTI's scale.
    more = S.generate_dataset(tmp_path / "more", "synthindoor", "indoor", n_train=4, n_test=2, seed=5, size=size,
                              progress=False)
    assert more.extra["n_train"] == 4
    for name in ("rgb/train_000002.png", "depth/train_000002.png", "rgb/test_000001.png"):
        assert (tmp_path / "ds" / name).read_bytes() == (tmp_path / "more" / name).read_bytes()
    road = S.generate_dataset(tmp_path / "road", "synthroad", "road", n_train=1, n_test=1, seed=0, size=(20, 64),
                              progress=False)
    assert (road.depth_scale, road.max_depth) == (256.0, 80.0)


@pytest.mark.parametrize("setup,seed", [("indoor", 5), ("road", 2)])
def test_object_shift_changes_only_the_object(setup: str, seed: int) -> None:
    size = {"indoor": (60, 80), "road": (64, 208)}[setup]
    shift = 0.8 if setup == "indoor" else 4.0
    pair = S.render_object_shift(setup, seed, shift, size, min_pixels=20)
    union = pair["mask_a"] | pair["mask_b"]
    assert pair["mask_a"].sum() >= 20 and pair["mask_b"].sum() >= 20
    differs = np.any(pair["rgb_a"] != pair["rgb_b"], axis=-1) | (pair["depth_a"] != pair["depth_b"])
    assert differs.any()
    assert not np.any(differs & ~union)
    # The object moved away: its depth grew by about the shift (its silhouette changes, so compare medians).
    grow = np.median(pair["depth_b"][pair["mask_b"]]) - np.median(pair["depth_a"][pair["mask_a"]])
    assert 0.3 * shift < grow < 1.7 * shift
    # Same seed, same pair.
    again = S.render_object_shift(setup, seed, shift, size, min_pixels=20)
    assert again["object_id"] == pair["object_id"] and np.array_equal(again["rgb_b"], pair["rgb_b"])


def test_object_shift_that_fits_nowhere_raises() -> None:
    with pytest.raises(ValueError, match="no visible object can be moved"):
        S.render_object_shift("indoor", 1, 50.0, (30, 40))
