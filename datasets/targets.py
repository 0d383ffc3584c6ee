"""Gaussian heatmap targets for top-down pose training (numpy).

Two encoders:

* HRNet (default of ``generate_heatmaps``): the joint is rounded to the nearest heatmap
  pixel (``int(x / stride + 0.5)``) and a 3-sigma window of an unnormalised Gaussian (peak 1,
  float32) is pasted there, clipped to the map. The window is computed once per sigma and
  pasted by slices, bit for bit the reference's values (2-3 times faster than evaluating the
  Gaussian over every map).
* DarkPose's unbiased encoder (``unbiased=True``, or ``generate_heatmaps_from_hm_coords``
  for joints already in heatmap pixels): the Gaussian is centred on the sub-pixel joint and
  covers the whole map.

Sizes are ``(width, height)`` (OpenCV order); maps are ``[J, H_hm, W_hm]``.
A joint gets ``target_weight = 0`` (and an empty map) when its 3-sigma window lies
entirely outside the heatmap; otherwise the weight is its visibility, and the map is drawn
only when the visibility is > 0.5.
"""
import functools
import math

import numpy as np
import torch


def _check_joints(joints, joints_vis):
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 2 or joints.shape[1] not in (2, 3):
        raise ValueError(f"joints must have shape (J, 2) or (J, 3) as (x, y[, 0]), got {joints.shape}")
    num_joints = joints.shape[0]
    vis = np.asarray(joints_vis, dtype=np.float64)
    if vis.shape == (num_joints,):
        vis = vis[:, None]
    if vis.ndim != 2 or vis.shape[0] != num_joints or vis.shape[1] not in (1, 2, 3):
        raise ValueError(f"joints_vis must have shape ({num_joints},), ({num_joints}, 1) or "
                         f"({num_joints}, 3), got {np.shape(joints_vis)}")
    return joints[:, :2], vis[:, 0]


def _size_pair(size, name):
    arr = np.asarray(size)
    if arr.shape != (2,) or np.any(arr <= 0):
        raise ValueError(f"{name} must be a positive (width, height) pair, got {size!r}")
    return int(arr[0]), int(arr[1])


@functools.lru_cache(maxsize=8)
def _gaussian_window(sigma):
    """HRNet's unnormalised Gaussian window of one joint, float32 (read-only): ``size = 2 * 3 sigma + 1``
    values ``x = 0, 1, ...`` per axis, ``g[i, j] = exp(-((j - c)^2 + (i - c)^2) / (2 sigma^2))`` with
    ``c = size // 2``, every step in float32 as the reference computes it."""
    size = 2 * sigma * 3 + 1
    x = np.arange(0, size, 1, np.float32)
    c = np.float32(size // 2)
    d2 = (x - c) ** 2
    window = np.exp(-(d2[None, :] + d2[:, None]) / np.float32(2 * sigma ** 2))
    window.flags.writeable = False
    return window


def _window_test(ul_x, ul_y, br_x, br_y, width, height):
    """True where the window [ul, br) touches the map."""
    return ~((ul_x >= width) | (ul_y >= height) | (br_x < 0) | (br_y < 0))


def generate_heatmaps(joints, joints_vis, image_size, heatmap_size, sigma, unbiased=False):
    """Heatmap targets for one person crop.

    ``joints``: (J, 2) or (J, 3) in input-crop pixels; ``joints_vis``: (J,), (J, 1) or
    (J, 3) (first column used, 0/1). ``image_size`` and ``heatmap_size`` are
    ``(width, height)``; ``sigma`` is in heatmap pixels.

    Default: HRNet's ``generate_target`` (gaussian). ``unbiased=True``: the joints are
    converted to heatmap pixels by ``x * W_hm / W_img``, ``y * H_hm / H_img`` and encoded
    with DarkPose's rule (``generate_heatmaps_from_hm_coords``).

    Returns ``(heatmaps float32 [J, H_hm, W_hm], target_weight float32 [J, 1])``.
    """
    joints, vis = _check_joints(joints, joints_vis)
    img_w, img_h = _size_pair(image_size, "image_size")
    hm_w, hm_h = _size_pair(heatmap_size, "heatmap_size")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (heatmap pixels), got {sigma!r}")
    if unbiased:
        joints_hm = np.stack([joints[:, 0] * hm_w / img_w, joints[:, 1] * hm_h / img_h], axis=1)
        return generate_heatmaps_from_hm_coords(joints_hm, vis, (hm_w, hm_h), sigma)

    # Per joint in Python floats (float64, as numpy computes them): cheaper than numpy for 17 joints.
    sigma = float(sigma)
    tmp_size = sigma * 3
    stride_x, stride_y = img_w / hm_w, img_h / hm_h
    window = _gaussian_window(sigma)
    size = window.shape[0]
    heatmaps = np.zeros((joints.shape[0], hm_h, hm_w), dtype=np.float32)
    weight = np.zeros(joints.shape[0], dtype=np.float32)
    for j, ((x, y), v) in enumerate(zip(joints.tolist(), vis.tolist())):
        if x != x or y != y:  # NaN: every bound test of the reference is False, the weight is kept, no map
            weight[j] = v
            continue
        if math.isinf(x) or math.isinf(y):  # the window is off the map
            continue
        # int() of the reference truncates toward zero.
        mu_x, mu_y = math.trunc(x / stride_x + 0.5), math.trunc(y / stride_y + 0.5)
        ul_x, ul_y = math.trunc(mu_x - tmp_size), math.trunc(mu_y - tmp_size)
        br_x, br_y = math.trunc(mu_x + tmp_size + 1), math.trunc(mu_y + tmp_size + 1)
        if ul_x >= hm_w or ul_y >= hm_h or br_x < 0 or br_y < 0:
            continue
        weight[j] = v
        if weight[j] > 0.5:
            # The part of the window on the map: rows [y0, y1) take window rows [y0 - ul_y, y1 - ul_y).
            x0, x1 = max(0, ul_x), min(hm_w, br_x, ul_x + size)
            y0, y1 = max(0, ul_y), min(hm_h, br_y, ul_y + size)
            heatmaps[j, y0:y1, x0:x1] = window[y0 - ul_y:y1 - ul_y, x0 - ul_x:x1 - ul_x]
    return heatmaps, weight[:, None]


def generate_heatmaps_from_hm_coords(joints_hm, joints_vis, heatmap_size, sigma):
    """DarkPose (unbiased) targets from joints already in heatmap pixels.

    ``joints_hm``: (J, 2) or (J, 3), sub-pixel (x, y) in heatmap pixels; ``joints_vis``:
    (J,), (J, 1) or (J, 3); ``heatmap_size = (width, height)``; ``sigma`` in heatmap pixels.
    A joint keeps its weight if the window ``[int(x - 3 sigma), int(x + 3 sigma + 1))`` (and
    likewise in y) touches the map; if the weight is > 0.5 the whole map is
    ``exp(-((X - x)^2 + (Y - y)^2) / (2 sigma^2))``, computed in float64 and stored float32.

    Returns ``(heatmaps float32 [J, H_hm, W_hm], target_weight float32 [J, 1])``.
    """
    joints, vis = _check_joints(joints_hm, joints_vis)
    hm_w, hm_h = _size_pair(heatmap_size, "heatmap_size")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (heatmap pixels), got {sigma!r}")
    sigma = float(sigma)
    tmp_size = sigma * 3
    mu_x, mu_y = joints[:, 0], joints[:, 1]
    inside = _window_test(np.trunc(mu_x - tmp_size), np.trunc(mu_y - tmp_size),
                          np.trunc(mu_x + tmp_size + 1), np.trunc(mu_y + tmp_size + 1), hm_w, hm_h)
    weight = np.where(inside, vis, 0.0).astype(np.float32)
    draw = inside & (weight > 0.5)

    xs = np.arange(hm_w, dtype=np.float32).astype(np.float64)
    ys = np.arange(hm_h, dtype=np.float32).astype(np.float64)
    dx2 = (xs[None, :] - mu_x[:, None]) ** 2
    dy2 = (ys[None, :] - mu_y[:, None]) ** 2
    maps = np.exp(-(dx2[:, None, :] + dy2[:, :, None]) / (2 * sigma ** 2))
    heatmaps = np.where(draw[:, None, None], maps, 0.0).astype(np.float32)
    return heatmaps, weight[:, None]


def batch_heatmaps(joints, joints_vis, image_size, heatmap_size, sigma):
    """HRNet targets of a batch in torch, on the joints' device: ``generate_heatmaps`` for each crop, bit for bit.

    ``joints`` [B, J, 2] in input-crop pixels (float64 keeps the reference's rounding of the joint to its heatmap
    pixel), ``joints_vis`` [B, J] or [B, J, 1]; sizes ``(width, height)``; ``sigma`` in heatmap pixels. The
    reference's float32 window (``_gaussian_window``) is added into zero maps at each joint's window position
    (``scatter_add_``; window pixels off the map add 0), so no Gaussian is evaluated and only the window's pixels
    are touched. Returns ``(heatmaps float32 [B, J, H_hm, W_hm], target_weight float32 [B, J, 1])``.
    """
    img_w, img_h = _size_pair(image_size, "image_size")
    hm_w, hm_h = _size_pair(heatmap_size, "heatmap_size")
    sigma = float(sigma)
    tmp_size = sigma * 3
    joints = torch.as_tensor(joints).double()
    device, (b, j) = joints.device, joints.shape[:2]
    vis = torch.as_tensor(joints_vis, device=device).double().reshape(b, j)
    window = torch.from_numpy(_gaussian_window(sigma).copy()).to(device)
    size = window.shape[0]
    mu = torch.trunc(joints / torch.tensor([img_w / hm_w, img_h / hm_h], dtype=torch.float64, device=device) + 0.5)
    ul, br = torch.trunc(mu - tmp_size), torch.trunc(mu + tmp_size + 1)
    # A NaN joint fails every bound test of the reference: it keeps its weight and gets no map.
    nan = torch.isnan(joints).any(-1)
    touches = _window_test(ul[..., 0], ul[..., 1], br[..., 0], br[..., 1], hm_w, hm_h) | nan
    weight = torch.where(touches, vis, 0.0)
    draw = touches & (weight > 0.5) & ~nan
    steps = torch.arange(size, dtype=torch.float64, device=device)
    ul, br = torch.nan_to_num(ul), torch.nan_to_num(br)  # (not drawn; keeps the indices finite)

    def positions(axis, length):  # the map position of every window row / column, and whether it is pasted
        pos = ul[..., axis, None] + steps
        return pos.clamp(0, length - 1).long(), (pos >= 0) & (pos < length) & (pos < br[..., axis, None])

    px, in_x = positions(0, hm_w)
    py, in_y = positions(1, hm_h)
    pasted = in_y[..., :, None] & in_x[..., None, :] & draw[..., None, None]
    index = (py[..., :, None] * hm_w + px[..., None, :]).reshape(b * j, -1)
    values = torch.where(pasted, window, 0.0).reshape(b * j, -1)
    heatmaps = torch.zeros(b * j, hm_h * hm_w, dtype=torch.float32, device=device).scatter_add_(1, index, values)
    return heatmaps.reshape(b, j, hm_h, hm_w), weight.float()[..., None]


def batch_heatmaps_from_hm_coords(joints_hm, joints_vis, heatmap_size, sigma):
    """DarkPose (unbiased) targets of a batch in torch: ``generate_heatmaps_from_hm_coords`` for each crop.

    ``joints_hm`` [B, J, 2] sub-pixel joints in heatmap pixels, ``joints_vis`` [B, J] or [B, J, 1]. The
    Gaussian is the product of its x and y factors in float64, stored float32: the numpy encoder's values up to
    float32 rounding (it takes one ``exp`` of the sum). Returns ``(heatmaps float32 [B, J, H_hm, W_hm],
    target_weight float32 [B, J, 1])``.
    """
    hm_w, hm_h = _size_pair(heatmap_size, "heatmap_size")
    sigma = float(sigma)
    tmp_size = sigma * 3
    joints = torch.as_tensor(joints_hm).double()
    device = joints.device
    vis = torch.as_tensor(joints_vis, device=device).double().reshape(joints.shape[:2])
    mu_x, mu_y = joints[..., 0], joints[..., 1]
    inside = _window_test(torch.trunc(mu_x - tmp_size), torch.trunc(mu_y - tmp_size),
                          torch.trunc(mu_x + tmp_size + 1), torch.trunc(mu_y + tmp_size + 1), hm_w, hm_h)
    weight = torch.where(inside, vis, 0.0)
    draw = inside & (weight > 0.5)
    gx = torch.exp(-(torch.arange(hm_w, dtype=torch.float64, device=device) - mu_x[..., None]) ** 2 / (2 * sigma ** 2))
    gy = torch.exp(-(torch.arange(hm_h, dtype=torch.float64, device=device) - mu_y[..., None]) ** 2 / (2 * sigma ** 2))
    maps = torch.where(draw[..., None, None], gy[..., :, None] * gx[..., None, :], 0.0)
    return maps.float(), weight.float()[..., None]
