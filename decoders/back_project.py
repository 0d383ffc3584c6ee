"""Heatmap pixels -> image pixels for top-down crops (closed form of the inverse affine).

HRNet: ``x = c_x + (x_hm - W/2) * s``, ``y = c_y + (y_hm - H/2) * s`` with
``s = scale[0] * pixel_std / W`` (the crop centre is heatmap point (W/2, H/2)).
DarkPose (``unbiased=True``): ``x = c_x + (x_hm - (W-1)/2) * s'``, ``y = c_y + (y_hm - (H-1)/2) * s'``
with ``s' = (scale[0] * pixel_std - 1) / (W - 1)``.
Only ``scale[0]`` is used (the crop aspect ratio fixes the height), rotation is 0, as in
the reference ``transform_preds``. These reproduce the reference (which goes through
``get_affine_transform(..., inv=1)``) to ~1e-4 image pixel.
"""
import numpy as np
import torch

_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def to_image_coords(coords, center, scale, heatmap_size, unbiased=False, pixel_std=200.0):
    """Map heatmap coordinates to image coordinates.

    ``coords``: (B, J, 2) (or (J, 2)) (x, y) in heatmap pixels; ``center``: (B, 2) (or (2,))
    box centres in image pixels; ``scale``: (B, 2) (or (2,)) in ``pixel_std`` units;
    ``heatmap_size = (width, height)`` of the heatmap (OpenCV order).

    Returns float32 image coordinates of the shape of ``coords``: numpy for numpy input,
    torch (on the device of ``coords``) for torch input. Computed in float64.
    """
    hm_w, hm_h = (float(v) for v in np.asarray(heatmap_size).reshape(-1))
    is_torch = isinstance(coords, torch.Tensor)
    if is_torch and coords.device.type == "cpu":
        # The same arithmetic in numpy: on these small arrays torch's per-operation overhead doubles the time.
        args = [coords] + [torch.as_tensor(v) for v in (center, scale)]
        if all(t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS and not t.requires_grad for t in args):
            preds = to_image_coords(*(t.resolve_neg().numpy() for t in args), heatmap_size, unbiased, pixel_std)
            return torch.from_numpy(preds)
    if is_torch:
        dev = coords.device
        c = coords.to(torch.float64)
        ctr = torch.as_tensor(center, device=dev).to(torch.float64)
        scl = torch.as_tensor(scale, device=dev)
    else:
        c = np.asarray(coords, dtype=np.float64)
        ctr = np.asarray(center, dtype=np.float64)
        scl = np.asarray(scale)
    if tuple(c.shape[-1:]) != (2,) or c.ndim not in (2, 3):
        raise ValueError(f"coords must have shape (B, J, 2) or (J, 2), got {tuple(c.shape)}")
    batch_shape = tuple(c.shape[:-2])
    if tuple(ctr.shape) != batch_shape + (2,) or tuple(scl.shape) != batch_shape + (2,):
        raise ValueError(f"center and scale must have shape {batch_shape + (2,)} for coords of shape "
                         f"{tuple(c.shape)}, got {tuple(ctr.shape)} and {tuple(scl.shape)}")
    # The reference forms scale * pixel_std in the scale's dtype (float32) before using it.
    if is_torch:
        src_w = (scl * pixel_std).to(torch.float64)[..., 0:1]
    else:
        scl = scl.astype(scl.dtype if scl.dtype.kind == "f" else np.float64)
        src_w = (scl * scl.dtype.type(pixel_std)).astype(np.float64)[..., 0:1]
    if unbiased:
        step = (src_w - 1) / (hm_w - 1)
        ox, oy = (hm_w - 1) / 2, (hm_h - 1) / 2
    else:
        step = src_w / hm_w
        ox, oy = hm_w / 2, hm_h / 2
    step = step[..., None, :]                 # (..., 1, 1)
    cx = ctr[..., None, 0:1]
    cy = ctr[..., None, 1:2]
    x = cx + (c[..., 0:1] - ox) * step
    y = cy + (c[..., 1:2] - oy) * step
    if is_torch:
        return torch.cat([x, y], dim=-1).to(torch.float32)
    return np.concatenate([x, y], axis=-1).astype(np.float32)
