"""Noisy linear imputation of removed pixels (ROAD: Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022).

Replacing removed pixels by a constant colour leaks the *shape* of the removal mask into the perturbed image: a
network can read which pixels were removed, and methods whose masks differ in shape (scattered gradients, blocky
rollout, blob-like learned masks) are then scored partly on their mask's shape. ROAD fills every removed pixel with
the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones;
neighbours outside the image are left out and the weights renormalised), where a neighbour that is itself removed
contributes its own imputed value. This is one sparse linear system per mask,

    (sum_n w_n) x_i - sum_{n removed} w_n x_n = sum_{n kept} w_n v_n      for every removed pixel i,

solved exactly (SuperLU), per colour channel with one factorisation. Gaussian noise of standard deviation
``noise_std`` (0.01 in ROAD) is then added to the imputed pixels, so that the imputed region is not perfectly
smooth either. The neighbour weights, the system and the noise are those of the reference implementation
(``tleemann/road_evaluation``, as copied into Quantus's ``noisy_linear_imputation``; ``tests/test_imputation.py``
checks equality with Quantus).

One case the reference leaves singular: a connected group of removed pixels with no kept pixel around it (e.g.
every pixel removed) has no value to interpolate from. Such a group takes ``fallback`` (the dataset's mean colour,
as the ``mean`` replacement would), and the system is solved for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from scipy import ndimage
from scipy.sparse.linalg import spsolve
from torch import Tensor

#: (row offset, column offset) -> weight of a neighbour in ROAD's imputation.
ROAD_NEIGHBOURS: tuple[tuple[tuple[int, int], float], ...] = (
    ((-1, -1), 1 / 12), ((-1, 0), 1 / 6), ((-1, 1), 1 / 12), ((0, -1), 1 / 6),
    ((0, 1), 1 / 6), ((1, -1), 1 / 12), ((1, 0), 1 / 6), ((1, 1), 1 / 12),
)


def linear_imputation(image: np.ndarray, removed: np.ndarray, fallback: Sequence[float]) -> np.ndarray:
    """Fill the removed pixels of ``image`` by ROAD's linear interpolation (no noise).

    Args:
        image: ``(C, H, W)`` float64.
        removed: ``(H, W)`` bool, the pixels to impute.
        fallback: ``(C,)`` value of removed groups that touch no kept pixel (see the module docstring).

    Returns:
        ``(C, H, W)`` float64: kept pixels unchanged, removed pixels imputed.
    """
    channels, h, w = image.shape
    out = np.array(image, dtype=np.float64, copy=True)
    if not removed.any():
        return out
    removed = np.asarray(removed, dtype=bool)
    labels, _ = ndimage.label(removed, structure=np.ones((3, 3), dtype=bool))
    # groups with a kept pixel among their 8 neighbours; the others cannot be interpolated
    touching = np.unique(labels[ndimage.binary_dilation(~removed, structure=np.ones((3, 3), dtype=bool)) & removed])
    isolated = removed & ~np.isin(labels, touching)
    if isolated.any():
        out[:, isolated] = np.asarray(fallback, dtype=np.float64)[:, None]
        removed = removed & ~isolated
    unknown = np.flatnonzero(removed.ravel())
    n = unknown.size
    if n == 0:
        return out
    variable = np.full(h * w, -1, dtype=np.int64)
    variable[unknown] = np.arange(n)
    rows, cols = np.divmod(unknown, w)
    flat = out.reshape(channels, -1)
    diagonal = np.zeros(n)
    rhs = np.zeros((n, channels))
    entries_i, entries_j, entries_v = [np.arange(n)], [np.arange(n)], []
    for (dr, dc), weight in ROAD_NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        i = np.flatnonzero(inside)
        neighbour = r[inside] * w + c[inside]
        diagonal[i] += weight
        is_unknown = variable[neighbour] >= 0
        entries_i.append(i[is_unknown])
        entries_j.append(variable[neighbour[is_unknown]])
        entries_v.append(np.full(int(is_unknown.sum()), -weight))
        rhs[i[~is_unknown]] += weight * flat[:, neighbour[~is_unknown]].T
    matrix = sp.csc_matrix((np.concatenate([diagonal, *entries_v]),
                            (np.concatenate(entries_i), np.concatenate(entries_j))), shape=(n, n))
    solution = spsolve(matrix, rhs)
    flat[:, unknown] = np.asarray(solution).reshape(n, channels).T
    return out


def noisy_linear_imputation(image: Tensor, removed: Tensor, fallback: Sequence[float], noise_std: float,
                            generator: torch.Generator) -> Tensor:
    """ROAD's noisy linear imputation of one perturbed copy.

    Args:
        image: ``(3, H, W)`` RGB in [0, 1] (any device).
        removed: ``(H, W)`` bool, the pixels to impute.
        fallback: ``(3,)`` colour of removed groups without a kept neighbour.
        noise_std: standard deviation of the Gaussian noise added to the imputed pixels.
        generator: CPU generator the noise is drawn from (``(3, n_removed)`` values, in raster order).

    Returns:
        ``(3, H, W)`` on ``image``'s device and dtype.
    """
    mask = removed.detach().cpu().numpy().astype(bool)
    filled = linear_imputation(image.detach().cpu().double().numpy(), mask, fallback)
    result = torch.from_numpy(filled)
    if noise_std > 0 and mask.any():
        noise = torch.randn((image.shape[0], int(mask.sum())), generator=generator, dtype=torch.float64)
        result[:, torch.from_numpy(mask)] += noise_std * noise
    return result.to(device=image.device, dtype=image.dtype)
