"""Detection-box evaluation helpers: keypoint rescoring and OKS-based NMS (HRNet rules).

OKS between a reference pose ``g`` and a candidate ``d`` (image pixels) is
``mean_k exp(-e_k)``, ``e_k = |d_k - g_k|^2 / (2 sigma_k)^2 / ((area_g + area_d)/2 + eps) / 2``
over all 17 joints (no visibility test), ``eps = 2.220446049250313e-16``. As in the
reference, the coordinate differences and their squared sum are float32 when the keypoints
are float32 (an all-float64 computation differs by <= 1e-8); areas and the rest are float64.
"""
import numpy as np

from datasets.coco_meta import OKS_SIGMAS

_EPS = np.spacing(1)


def _sigmas(sigmas, num_joints):
    s = OKS_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if s.shape != (num_joints,):
        raise ValueError(f"sigmas must have shape ({num_joints},), got {s.shape}")
    return s


def _as_keypoints(kpts, name):
    """(N, J, 3) array (float32 kept as float32, else float64); accepts flat (N, 3J)."""
    arr = np.asarray(kpts)
    arr = arr.astype(arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64)
    if arr.ndim == 2 and arr.shape[1] % 3 == 0 and arr.shape[1] != 3:
        arr = arr.reshape(arr.shape[0], -1, 3)
    if arr.ndim != 3 or arr.shape[2] < 2:
        raise ValueError(f"{name} must have shape (N, J, 3) as (x, y, score) per joint, got {np.shape(kpts)}")
    return arr


def oks_iou(g, d, area_g, area_d, sigmas=None):
    """OKS of one pose ``g`` (J, 3) (or flat 3J) against ``d`` (N, J, 3) (or (N, 3J)).

    ``area_g`` (scalar) and ``area_d`` (N,) are the (padded box) areas in image pixels^2;
    ``sigmas`` (J,) defaults to the COCO sigmas. Returns float64 (N,).
    """
    g = _as_keypoints(np.asarray(g)[None], "g")[0]
    d = _as_keypoints(d, "d")
    if d.shape[1:] != g.shape:
        raise ValueError(f"d must have shape (N, {g.shape[0]}, {g.shape[1]}) to match g, got {d.shape}")
    area_d = np.asarray(area_d, dtype=np.float64).reshape(-1)
    if area_d.shape[0] != d.shape[0]:
        raise ValueError(f"area_d must have shape ({d.shape[0]},), got {np.shape(area_d)}")
    if d.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    variances = (_sigmas(sigmas, g.shape[0]) * 2) ** 2
    dx = d[:, :, 0] - g[None, :, 0]
    dy = d[:, :, 1] - g[None, :, 1]
    denom = (float(area_g) + area_d) / 2 + _EPS
    e = (dx ** 2 + dy ** 2) / variances[None, :] / denom[:, None] / 2
    return np.exp(-e).mean(axis=1)


def rescore(keypoint_scores, box_scores, thresh=0.2):
    """``box_score * mean(joint scores > thresh)`` per candidate (0 when no joint exceeds it).

    ``keypoint_scores`` (N, J) (or (N, J, 3), the score column is used), ``box_scores`` (N,).
    Returns float64 (N,).
    """
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    if ks.ndim == 3:
        if ks.shape[2] != 3:
            raise ValueError(f"keypoint_scores must have shape (N, J) or (N, J, 3), got {ks.shape}")
        ks = ks[:, :, 2]
    if ks.ndim != 2:
        raise ValueError(f"keypoint_scores must have shape (N, J) or (N, J, 3), got {ks.shape}")
    box = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if box.shape[0] != ks.shape[0]:
        raise ValueError(f"box_scores must have shape ({ks.shape[0]},), got {np.shape(box_scores)}")
    above = ks > thresh
    count = above.sum(axis=1)
    total = np.where(above, ks, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return box * mean


def oks_nms(keypoints, scores, areas, thresh=0.9, sigmas=None):
    """Greedy OKS-NMS over the candidates of one image; returns kept indices in keep order.

    ``keypoints`` (N, 17, 3) image pixels + score, ``scores`` (N,) (the rescored scores),
    ``areas`` (N,) padded box areas (``prod(scale * 200)``). Candidates are visited by
    descending score; each kept one removes the remaining ones with ``OKS > thresh``.
    """
    kpts = _as_keypoints(keypoints, "keypoints")
    n = kpts.shape[0]
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if scores.shape[0] != n or areas.shape[0] != n:
        raise ValueError(f"scores and areas must have shape ({n},), got {np.shape(scores)} and {np.shape(areas)}")
    if n == 0:
        return []
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas)
        order = rest[ovr <= thresh]
    return keep
