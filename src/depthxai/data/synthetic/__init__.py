"""Procedural scenes with exact metric depth: the embedded default dataset (no download needed).

A scene is an explicit list of primitives (planes, boxes rotated about the vertical axis, spheres), each with a
procedural material, plus a pinhole camera and one light. :func:`render` ray-casts it with array operations over
whole images (:mod:`.raycast`): every pixel gets the nearest hit, its depth and the id of the object it belongs
to; shading is Lambertian plus ambient, with hard shadows cast by the objects, distance fall-off of an indoor lamp
and haze outdoors.

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

Modules, one job each: :mod:`.scene` (set-ups, primitives, camera, light), :mod:`.raycast` (primary and shadow
rays, surface geometry), :mod:`.materials` (procedural textures), :mod:`.shading` (shading, :func:`render`),
:mod:`.sampling` (random rooms and streets), :mod:`.shift` (the object-shift control pair), :mod:`.dataset` (the
prepared layout).

Determinism: image ``i`` of split ``s`` is rendered from ``default_rng(scene_seed(base, s, i))``, so every
image can be re-rendered alone and adding images never changes the earlier ones.
"""

from depthxai.data.synthetic.dataset import GENERATOR_VERSION, generate_dataset, image_id, scene_seed
from depthxai.data.synthetic.raycast import PrimitiveTable, cast_rays
from depthxai.data.synthetic.sampling import sample_scene
from depthxai.data.synthetic.scene import (
    SETUPS,
    Box,
    Camera,
    Light,
    Material,
    Plane,
    Primitive,
    Render,
    Scene,
    SetupSpec,
    Sphere,
    Vec3,
    get_setup,
    scaled_intrinsics,
)
from depthxai.data.synthetic.shading import render, render_scene
from depthxai.data.synthetic.shift import render_object_shift

__all__ = [
    "GENERATOR_VERSION", "SETUPS", "Box", "Camera", "Light", "Material", "Plane", "Primitive", "PrimitiveTable",
    "Render", "Scene", "SetupSpec", "Sphere", "Vec3", "cast_rays", "generate_dataset", "get_setup", "image_id",
    "scene_seed", "render", "render_object_shift", "render_scene", "sample_scene", "scaled_intrinsics",
]
