"""Ray casting over whole images with array operations: primary visibility, surface geometry, shadow rays.

A scene's primitives are packed once into a :class:`PrimitiveTable` (one column per primitive). A query is a set
of *pairs* (ray, primitive): every pixel against every plane, and every pixel inside a box's or sphere's
conservative screen rectangle against it (primary rays); every lit surface point against every shadow caster
whose bounding sphere, seen from the light, can cover the point's image tile (shadow rays). The pairs of all
primitives of one kind are intersected in one array operation and reduced per ray: the nearest hit with ties to
the lower primitive index (as a front-to-back loop over the primitives would give), or any hit. Python loops run
over the three primitive kinds and the three axes of a slab test, never over pixels or objects.

Every pair is intersected with the same floating-point operations, in the same order, as a loop over one
primitive at a time, so depths, object ids and shadows do not depend on how the pairs are formed or culled:
culling only drops pairs that cannot hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depthxai.data.synthetic.scene import Box, Camera, Plane, Primitive, Scene, Sphere

#: Ray parameters below this are treated as self-intersections (metres of z-depth).
EPS = 1e-6
#: Offset of shadow-ray origins along the surface normal (metres).
SHADOW_BIAS = 1e-3
#: Primitive kinds (:attr:`PrimitiveTable.kind`).
PLANE, BOX, SPHERE = 0, 1, 2
#: Side of the square image tiles whose points are culled together against each shadow caster (pixels).
SHADOW_TILE = 8
#: Relative and absolute slack of the tile culling tests, far above float rounding: culling stays conservative.
_CULL_SLACK = 1e-6

_UNIT_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


@dataclass(frozen=True)
class PrimitiveTable:
    """A scene's primitives as arrays; column ``k`` is ``scene.primitives[k]``.

    Attributes:
        kind: ``int8 (P,)`` :data:`PLANE`, :data:`BOX` or :data:`SPHERE`.
        center: ``(3, P)`` a plane's ``point``, a box's or sphere's centre.
        normal, u_axis, v_axis: ``(3, P)`` planes: unit normal and texture axes (``v = normal x u``); 0 otherwise.
        offset: ``(P,)`` planes: ``point . normal``.
        half: ``(3, P)`` boxes: half extents. ``cos``, ``sin``: ``(P,)`` boxes: of the yaw (1, 0 otherwise).
        radius: ``(P,)`` spheres: radius. ``bound``: ``(P,)`` radius of a sphere about ``center`` enclosing the
            primitive (``inf`` for planes).
        cast_shadow: ``bool (P,)``. ``object_id``: ``int32 (P,)``.
    """

    kind: np.ndarray
    center: np.ndarray
    normal: np.ndarray
    u_axis: np.ndarray
    v_axis: np.ndarray
    offset: np.ndarray
    half: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    radius: np.ndarray
    bound: np.ndarray
    cast_shadow: np.ndarray
    object_id: np.ndarray

    @classmethod
    def from_primitives(cls, prims: tuple[Primitive, ...] | list[Primitive]) -> PrimitiveTable:
        """Pack ``prims`` (scalars per primitive: the only per-object Python work of a render)."""
        p = len(prims)
        kind = np.zeros(p, dtype=np.int8)
        center, normal, u_axis, v_axis, half = (np.zeros((3, p)) for _ in range(5))
        offset, radius = np.zeros(p), np.zeros(p)
        cos, sin, bound = np.ones(p), np.zeros(p), np.full(p, np.inf)
        for k, prim in enumerate(prims):
            if isinstance(prim, Plane):
                n, u = np.asarray(prim.normal, dtype=np.float64), np.asarray(prim.u_axis, dtype=np.float64)
                point = np.asarray(prim.point, dtype=np.float64)
                kind[k], center[:, k], normal[:, k], u_axis[:, k] = PLANE, point, n, u
                v_axis[:, k] = np.cross(n, u)
                offset[k] = point @ n
            elif isinstance(prim, Box):
                kind[k], center[:, k], half[:, k] = BOX, prim.center, prim.half
                # math.cos, not np.cos: the same bits as the scalar code the depths were checked against.
                cos[k], sin[k] = math.cos(prim.yaw), math.sin(prim.yaw)
                bound[k] = float(np.linalg.norm(prim.half))
            elif isinstance(prim, Sphere):
                kind[k], center[:, k], radius[k], bound[k] = SPHERE, prim.center, prim.radius, prim.radius
            else:
                raise TypeError(f"not a primitive: {type(prim).__name__}")
        return cls(kind, center, normal, u_axis, v_axis, offset, half, cos, sin, radius, bound,
                   np.array([pr.cast_shadow for pr in prims], dtype=bool),
                   np.array([pr.object_id for pr in prims], dtype=np.int32))


#: Three coordinate rows ``(x, y, z)``, each ``(K,)``: vectors of many rays or points.
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


def _dot(a: Rows | np.ndarray, b: Rows | np.ndarray) -> np.ndarray:
    """Dot product of vectors given as three coordinate rows (or ``(3, ...)`` arrays); broadcasting."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _rows(values: np.ndarray, index: np.ndarray) -> Rows:
    """Columns ``index`` of a ``(3, P)`` table as three contiguous rows (``take`` is much faster than ``[:, i]``)."""
    return values[0].take(index), values[1].take(index), values[2].take(index)


def _to_local(x: np.ndarray, y: np.ndarray, z: np.ndarray, c: np.ndarray, s: np.ndarray) -> Rows:
    """World vectors in a box frame turned by ``-yaw`` about the vertical axis (``c, s``: cosine, sine of yaw)."""
    return c * x - s * z, y, s * x + c * z


def intersect(table: PrimitiveTable, kind: int, prim: np.ndarray, origins: np.ndarray | Rows, dirs: Rows,
              counts: np.ndarray | None = None) -> np.ndarray:
    """Nearest ray parameter ``t > EPS`` with ``origin + t * dir`` on each pair's primitive, ``inf`` on a miss.

    Args:
        kind: the kind of every primitive in ``prim``.
        prim: ``(K,)`` primitive index of each pair; or, with ``counts``, ``(Q,)`` primitives whose pairs come in
            consecutive runs of ``counts`` ``(Q,)`` (per-primitive values are then repeated, not gathered).
        origins: one point ``(3,)`` shared by every ray (its terms are then computed once per primitive, with the
            same operations), or rows of ``(K,)``.
        dirs: rows of ``(K,)`` (need not be unit), or scalars shared by every ray.

    Returns:
        ``(K,)`` float64.
    """
    shared = isinstance(origins, np.ndarray) and origins.shape == (3,)

    def expand(values: np.ndarray) -> np.ndarray:
        """Per-primitive ``values`` ``(P,)`` -> per pair."""
        return values.take(prim) if counts is None else np.repeat(values.take(prim), counts)

    if counts is not None and not shared:
        raise ValueError("counts needs one shared origin")
    dx, dy, dz = dirs
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == PLANE:
            normal = (expand(table.normal[0]), expand(table.normal[1]), expand(table.normal[2]))
            if shared:
                num = expand(table.offset - _dot(origins, table.normal))
            else:
                num = table.offset.take(prim) - _dot(origins, normal)
            t = num / _dot(dirs, normal)
            return np.where((t > EPS) & np.isfinite(t), t, np.inf)
        if shared:  # origin - centre once per primitive, expanded to the pairs below
            ocx, ocy, ocz = (origins[k] - table.center[k] for k in range(3))
        else:
            cx, cy, cz = _rows(table.center, prim)
            ocx, ocy, ocz = origins[0] - cx, origins[1] - cy, origins[2] - cz
        if kind == SPHERE:
            if shared:
                cc = expand(_dot((ocx, ocy, ocz), (ocx, ocy, ocz)) - table.radius**2)
                ocx, ocy, ocz = expand(ocx), expand(ocy), expand(ocz)
            else:
                cc = _dot((ocx, ocy, ocz), (ocx, ocy, ocz)) - table.radius.take(prim) ** 2
            a = _dot(dirs, dirs)
            b = _dot(dirs, (ocx, ocy, ocz))
            disc = b * b - a * cc
            root = np.sqrt(np.maximum(disc, 0.0))
            near = (-b - root) / a
            t = np.where(near > EPS, near, (-b + root) / a)
            return np.where((disc >= 0) & (t > EPS), t, np.inf)
        # Box: slab test in the box's frame. A ray parallel to a slab gives +-inf, or nan (0 * inf) when it lies in
        # a face plane; fmin/fmax skip the nan, so such rays count as missing that face. Boxes that are not turned
        # skip the rotation (as a loop over single boxes would).
        turned = bool(np.any(table.sin.take(prim) != 0.0)) or bool(np.any(table.cos.take(prim) != 1.0))
        if shared:
            o = _to_local(ocx, ocy, ocz, table.cos, table.sin) if turned else (ocx, ocy, ocz)
            bounds = [(expand(-table.half[k] - o[k]), expand(table.half[k] - o[k])) for k in range(3)]
        else:
            c, s = table.cos.take(prim), table.sin.take(prim)
            o = _to_local(ocx, ocy, ocz, c, s) if turned else (ocx, ocy, ocz)
            half = _rows(table.half, prim)
            bounds = [(-half[k] - o[k], half[k] - o[k]) for k in range(3)]
        d = _to_local(dx, dy, dz, expand(table.cos), expand(table.sin)) if turned else (dx, dy, dz)
        t_lo = t_hi = None
        for k in range(3):
            inv = 1.0 / d[k]
            t1 = bounds[k][0] * inv
            t2 = bounds[k][1] * inv
            near_k, far_k = np.fmin(t1, t2), np.fmax(t1, t2)
            t_lo = near_k if t_lo is None else np.fmax(t_lo, near_k)
            t_hi = far_k if t_hi is None else np.fmin(t_hi, far_k)
        assert t_lo is not None and t_hi is not None
        t = np.where(t_lo > EPS, t_lo, t_hi)
        return np.where((t_hi >= t_lo) & (t > EPS), t, np.inf)


def surface(table: PrimitiveTable, kind: int, prim: np.ndarray, points: np.ndarray,
            dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals facing the viewer ``(3, M)`` and metric texture coordinates ``(2, M)`` at hit ``points``
    ``(3, M)`` on primitives ``prim`` ``(M,)`` (all of ``kind``), seen along ``dirs`` ``(3, M)``."""
    center = _rows(table.center, prim)
    rel = (points[0] - center[0], points[1] - center[1], points[2] - center[2])
    normals = np.empty((3, len(prim)))
    if kind == PLANE:
        normals[0], normals[1], normals[2] = _rows(table.normal, prim)
        uv = np.stack([_dot(rel, _rows(table.u_axis, prim)), _dot(rel, _rows(table.v_axis, prim))])
    elif kind == SPHERE:
        radius = table.radius.take(prim)
        normals[0], normals[1], normals[2] = rel[0] / radius, rel[1] / radius, rel[2] / radius
        # Longitude/latitude scaled by the radius: metric along the equator.
        uv = np.stack([np.arctan2(normals[0], normals[2]), np.arccos(np.clip(normals[1], -1, 1))]) * radius
    else:
        c, s = table.cos.take(prim), table.sin.take(prim)
        local = np.stack(_to_local(*rel, c, s))
        half = np.stack(_rows(table.half, prim))
        axis = np.abs(local / half).argmax(axis=0)
        cols = np.arange(local.shape[1])
        normals_local = np.zeros_like(local)
        normals_local[axis, cols] = np.sign(local[axis, cols])
        normals[0] = c * normals_local[0] + s * normals_local[2]
        normals[1] = normals_local[1]
        normals[2] = -s * normals_local[0] + c * normals_local[2]
        # Face coordinates: x faces use (z, y), y faces (x, z), z faces (x, y); offset by the half extents so
        # that patterns start at a box corner.
        shifted = local + half
        uv = np.stack([np.choose(axis, [shifted[2], shifted[0], shifted[0]]),
                       np.choose(axis, [shifted[1], shifted[2], shifted[1]])])
    # Face the viewer (planes are two-sided; numerical safety for the others).
    flip = _dot(normals, dirs) > 0
    normals[:, flip] *= -1
    return normals, uv


# --------------------------------------------------------------------------------------------- pair generation


def _ragged_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(starts[i], starts[i] + lengths[i])`` over ``i`` (int64)."""
    lengths = lengths.astype(np.int64)
    first = np.cumsum(lengths) - lengths
    return np.repeat(starts.astype(np.int64) - first, lengths) + np.arange(int(lengths.sum()))


def screen_rects(camera: Camera, table: PrimitiveTable, prims: np.ndarray) -> np.ndarray:
    """Conservative pixel rectangles ``(Q, 4)`` = ``r0, r1, c0, c1`` (ends exclusive; empty if unseen) that contain
    the images of the boxes / spheres ``prims`` ``(Q,)``.

    The projection of a convex body lies in the hull of its corners' projections (a sphere's: of its bounding
    cube's) when all of them are in front of the camera; if some are not, the whole image is kept.
    """
    h, w = camera.size
    rects = np.zeros((len(prims), 4), dtype=np.int64)
    if len(prims) == 0:
        return rects
    kind = table.kind[prims]
    extent = np.where((kind == SPHERE)[:, None], table.radius[prims, None], table.half[:, prims].T)
    local = _UNIT_CORNERS[None] * extent[:, None, :]  # (Q, 8, 3)
    c, s = table.cos[prims, None], table.sin[prims, None]
    world = np.stack([c * local[..., 0] + s * local[..., 2], local[..., 1], -s * local[..., 0] + c * local[..., 2]],
                     axis=-1) + table.center[:, prims].T[:, None, :]
    cam = (world - np.asarray(camera.position)) @ camera.rotation()  # world -> camera frame, (Q, 8, 3)
    z = cam[..., 2]
    front = np.all(z > 1e-3, axis=1)
    zf = np.where(z > 1e-3, z, 1.0)  # rows with a corner near or behind the camera are replaced below
    u = cam[..., 0] / zf * camera.fx + camera.cx
    v = cam[..., 1] / zf * camera.fy + camera.cy
    rects[:, 0] = np.clip(np.floor(v.min(axis=1)) - 1, 0, h)
    rects[:, 1] = np.clip(np.ceil(v.max(axis=1)) + 2, 0, h)
    rects[:, 2] = np.clip(np.floor(u.min(axis=1)) - 1, 0, w)
    rects[:, 3] = np.clip(np.ceil(u.max(axis=1)) + 2, 0, w)
    rects[~front] = (0, h, 0, w)
    rects[np.all(z <= 0, axis=1)] = 0
    return rects


def _rect_pairs(camera: Camera, table: PrimitiveTable, prims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices inside each primitive's screen rectangle, primitive after primitive, and how many
    belong to each of ``prims`` ``(Q,)``."""
    w = camera.size[1]
    rects = screen_rects(camera, table, prims)
    heights = np.maximum(rects[:, 1] - rects[:, 0], 0)
    widths = np.maximum(rects[:, 3] - rects[:, 2], 0) * (heights > 0)
    rows = _ragged_ranges(rects[:, 0], heights)  # one entry per (primitive, row), primitive-major
    row_width = np.repeat(widths, heights)
    return _ragged_ranges(rows * w + np.repeat(rects[:, 2], heights), row_width), heights * widths


# --------------------------------------------------------------------------------------------- primary rays


def cast_rays(scene: Scene, dirs: np.ndarray | None = None,
              table: PrimitiveTable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Primary visibility: nearest z-depth ``(H, W)`` (``inf`` = nothing hit) and primitive index ``(H, W)``
    (-1 = nothing hit; on equal depths the lower index). ``dirs``: the camera's :meth:`Camera.ray_directions`,
    ``table``: the scene's :class:`PrimitiveTable`, if already computed."""
    camera = scene.camera
    h, w = camera.size
    table = PrimitiveTable.from_primitives(scene.primitives) if table is None else table
    flat = (camera.ray_directions() if dirs is None else dirs).reshape(3, -1)
    origin = np.asarray(camera.position, dtype=np.float64)
    no_index = np.iinfo(np.int64).max
    best_t, plane_idx = np.full(h * w, np.inf), np.full(h * w, no_index)
    planes = np.flatnonzero(table.kind == PLANE)
    if len(planes):
        t = intersect(table, PLANE, planes[:, None], origin, (flat[0], flat[1], flat[2]))  # (planes, pixels)
        best_t = t.min(axis=0)
        plane_idx = np.where(np.isfinite(best_t), planes.take(t.argmin(axis=0)), no_index)
    plane_t = best_t.copy()
    hits = []
    turned = (table.sin != 0.0) | (table.cos != 1.0)
    for kind, group in ((BOX, (table.kind == BOX) & ~turned), (BOX, (table.kind == BOX) & turned),
                        (SPHERE, table.kind == SPHERE)):
        prims = np.flatnonzero(group)
        pix, counts = _rect_pairs(camera, table, prims)
        t = intersect(table, kind, prims, origin, _rows(flat, pix), counts=counts)
        keep = np.flatnonzero(t < np.inf)
        pix, prim, t = pix.take(keep), np.repeat(prims, counts).take(keep), t.take(keep)
        np.minimum.at(best_t, pix, t)
        hits.append((pix, prim, t))
    # Ties go to the lowest index: among every pair at the final depth, the smallest primitive index wins.
    best_idx = np.where(plane_t == best_t, plane_idx, no_index)
    for pix, prim, t in hits:
        at_best = t == best_t.take(pix)
        np.minimum.at(best_idx, pix[at_best], prim[at_best])
    best_idx = np.where(best_t < np.inf, best_idx, -1)
    return best_t.reshape(h, w), best_idx.reshape(h, w)


# --------------------------------------------------------------------------------------------- shadow rays


def _tiles(pixels: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group points by the :data:`SHADOW_TILE` image tile of their flat pixel index ``pixels`` ``(M,)``: the order
    that sorts them by tile (stable), and each non-empty tile's first position and count in that order."""
    tiles_w = -(-width // SHADOW_TILE)
    tile = ((pixels // width) // SHADOW_TILE * tiles_w + (pixels % width) // SHADOW_TILE).astype(np.int32)
    order = np.argsort(tile, kind="stable")
    tile = tile.take(order)
    first = np.flatnonzero(np.r_[True, tile[1:] != tile[:-1]])
    return order, first, np.diff(np.r_[first, len(order)])


def _sun_boxes(table: PrimitiveTable, casters: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``casters`` in the sun's frame ``basis`` (rows: two axes across the beam, then towards the sun):
    lower and upper ``(3, C)`` (a box's corners projected, a sphere's centre +- radius; +-inf for planes)."""
    kind = table.kind.take(casters)
    extent = np.where((kind == SPHERE)[:, None], table.radius.take(casters)[:, None], table.half[:, casters].T)
    local = _UNIT_CORNERS[None] * extent[:, None, :]  # (C, 8, 3); a sphere's cube is only used below for boxes
    c, s = table.cos.take(casters)[:, None], table.sin.take(casters)[:, None]
    world = np.stack([c * local[..., 0] + s * local[..., 2], local[..., 1], -s * local[..., 0] + c * local[..., 2]],
                     axis=-1) + table.center[:, casters].T[:, None, :]
    light = world @ basis.T  # (C, 8, 3)
    lower, upper = light.min(axis=1).T, light.max(axis=1).T
    sphere = kind == SPHERE
    centre = basis @ table.center[:, casters]
    lower[:, sphere] = centre[:, sphere] - table.radius.take(casters[sphere])
    upper[:, sphere] = centre[:, sphere] + table.radius.take(casters[sphere])
    plane = kind == PLANE
    lower[:, plane], upper[:, plane] = -np.inf, np.inf
    return lower, upper


def shadow_visibility(scene: Scene, table: PrimitiveTable, points: np.ndarray, normals: np.ndarray,
                      pixels: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    """1 where the light reaches ``points`` ``(3, M)`` (surface ``normals`` ``(3, M)`` facing the light, seen at
    flat pixel indices ``pixels`` ``(M,)``, lying on primitives ``own`` ``(M,)`` if given), 0 where a
    shadow-casting primitive blocks it; float64 ``(M,)``.

    Culling, conservative at both levels: the points of each :data:`SHADOW_TILE` image tile are bounded by one
    sphere, and a (tile, caster) pair survives if the caster's bounds seen from the light (its box in the sun's
    frame; the cone of its bounding sphere from a point light) can cover it; then each point of a surviving tile
    is tested against the caster's bounds, and only the remaining (point, caster) pairs are intersected exactly.
    A point is not tested against its own primitive where its normal points out of it: a convex body lies behind
    the tangent plane that the ray leaves, so that test always misses.
    """
    light = scene.light
    n = points.shape[1]
    lit = np.ones(n)
    casters = np.flatnonzero(table.cast_shadow)
    if n == 0 or len(casters) == 0:
        return lit
    origins = points + SHADOW_BIAS * normals
    order, first, counts = _tiles(pixels, scene.camera.size[1])
    sorted_pts = origins.take(order, axis=1)
    lo, hi = np.minimum.reduceat(sorted_pts, first, axis=1), np.maximum.reduceat(sorted_pts, first, axis=1)
    t_center, t_radius = (lo + hi) / 2, np.sqrt(_dot(hi - lo, hi - lo)) / 2
    slack = _CULL_SLACK * (1.0 + float(np.abs(t_center).max()))
    if light.kind == "sun":
        sun = np.asarray(light.vector, dtype=np.float64)
        e1 = np.cross(sun, [0.0, 0.0, 1.0] if abs(sun[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        basis = np.stack([e1, np.cross(sun, e1), sun])
        lower, upper = _sun_boxes(table, casters, basis)
        tile_l = basis @ t_center
        grow = t_radius[:, None] + slack
        tile_ok = ((tile_l[0][:, None] >= lower[0] - grow) & (tile_l[0][:, None] <= upper[0] + grow)
                   & (tile_l[1][:, None] >= lower[1] - grow) & (tile_l[1][:, None] <= upper[1] + grow)
                   & (tile_l[2][:, None] - grow < upper[2]))
    else:
        lamp = np.asarray(light.vector, dtype=np.float64)
        c_center, c_bound = table.center[:, casters], table.bound.take(casters)
        axis = c_center - lamp[:, None]
        dc = np.sqrt(_dot(axis, axis))
        vt = t_center - lamp[:, None]
        dt = np.sqrt(_dot(vt, vt))
        with np.errstate(divide="ignore", invalid="ignore"):
            half_c = np.arcsin(np.clip(c_bound / dc, 0.0, 1.0))
            half_t = np.arcsin(np.clip(t_radius / dt, 0.0, 1.0))
            between = np.arccos(np.clip((vt.T @ axis) / (dt[:, None] * dc), -1.0, 1.0))
        engulfed = (dc <= c_bound)[None, :] | (dt <= t_radius)[:, None] | ~np.isfinite(c_bound)[None, :]
        tile_ok = engulfed | ((between <= half_t[:, None] + half_c + _CULL_SLACK)
                              & (dt[:, None] + t_radius[:, None] > dc - c_bound - slack))
    tile_i, cast_i = np.nonzero(tile_ok)
    pair_counts = counts.take(tile_i)
    rank, owner = _ragged_ranges(first.take(tile_i), pair_counts), np.repeat(np.arange(len(tile_i)), pair_counts)
    point, caster = order.take(rank), casters.take(cast_i.take(owner))
    # Point-level test against the same bounds, then exact intersections of what remains.
    with np.errstate(divide="ignore", invalid="ignore"):
        if light.kind == "sun":
            which = cast_i.take(owner)
            near = np.ones(len(point), dtype=bool)
            for k in range(3):
                coord = _dot(basis[k], _rows(origins, point))
                near &= coord <= upper[k].take(which) + slack
                if k < 2:
                    near &= coord >= lower[k].take(which) - slack
            to_light: Rows = (sun[0], sun[1], sun[2])
            reach = np.inf
        else:
            to_light = (lamp[0] - origins[0], lamp[1] - origins[1], lamp[2] - origins[2])
            dist = np.sqrt(_dot(to_light, to_light))
            radius = table.bound.take(caster)
            ax = _rows(table.center, caster)
            ax = (ax[0] - lamp[0], ax[1] - lamp[1], ax[2] - lamp[2])
            dcp = np.sqrt(_dot(ax, ax))
            cos_cone = np.sqrt(np.maximum(1.0 - (radius / dcp) ** 2, 0.0))
            dp = dist.take(point)
            toward = _dot((-to_light[0].take(point) / dp, -to_light[1].take(point) / dp, -to_light[2].take(point) / dp),
                          (ax[0] / dcp, ax[1] / dcp, ax[2] / dcp))
            near = ~np.isfinite(radius) | (dcp <= radius) | ((toward >= cos_cone) & (dp > dcp - radius))
            reach = 1.0  # the light sits at parameter 1 of the unnormalised direction
    if own is not None:
        # Outward normals: a box's or sphere's normal points away from its centre (planes are two-sided).
        center = _rows(table.center, own)
        outward = (table.kind.take(own) == PLANE) | (_dot(normals, (points[0] - center[0], points[1] - center[1],
                                                                     points[2] - center[2])) > 0)
        near &= ~((caster == own.take(point)) & outward.take(point))
    keep = np.flatnonzero(near)
    point, caster = point.take(keep), caster.take(keep)
    kinds = table.kind.take(caster)
    for kind in (PLANE, BOX, SPHERE):
        sel = np.flatnonzero(kinds == kind)
        if len(sel) == 0:
            continue
        pts = point.take(sel)
        dirs = to_light if light.kind == "sun" else (to_light[0].take(pts), to_light[1].take(pts),
                                                     to_light[2].take(pts))
        t = intersect(table, kind, caster.take(sel), _rows(origins, pts), dirs)
        lit[pts[t < reach]] = 0.0
    return lit
