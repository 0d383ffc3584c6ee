"""Heatmap -> joint coordinates (heatmap pixels), batched in torch.

Two methods, both without Python loops over samples or joints:

* ``"basic"`` (HRNet ``get_final_preds`` with POST_PROCESS): argmax, then a quarter-pixel
  step toward the higher neighbour in x and in y.
* ``"gauss_taylor"`` (DarkPose / DARK): argmax, Gaussian blur of every map (zero-padded
  'same' convolution with OpenCV's ``kernel``-tap Gaussian, rescaled to the original map
  maximum), ``log(max(hm, 1e-10))``, then one Newton step from the argmax using the
  finite-difference gradient and Hessian of the log map.

Coordinates are ``x`` (column) before ``y`` (row) with pixel centres at integers; maps are
``(B, J, H, W)``. Numpy input gives numpy output, torch input gives torch output on the
same device. Returned coordinates and maxvals are float32.

Precision: the argmax, the maxima and the basic quarter offsets use the input values
(float16/bfloat16 are promoted to float32), so "basic" is bit-identical to HRNet. The
DARK blur is computed in float64 (as the reference, which blurs a float64 copy), rounded to
float32 and rescaled in float32 like the reference; the log and the Taylor step are done in
float64. The reference does the Taylor step in float32, so on well-conditioned peaks the two
agree to ~1e-3 heatmap pixel; on ill-conditioned maps (pure noise, flat plateaus) the step
is sensitive to rounding in any precision (the reference itself moves by hundreds of pixels
between float32 and float64 input there). Float64 is used on every device (CUDA included):
the maps are small, so the cost is negligible next to the network.
"""
import numpy as np
import torch
import torch.nn.functional as F

_METHODS = ("basic", "gauss_taylor")


def _as_tensor(heatmaps):
    """(tensor, was_numpy); checks the (B, J, H, W) shape."""
    was_numpy = isinstance(heatmaps, np.ndarray)
    hm = torch.from_numpy(np.ascontiguousarray(heatmaps)) if was_numpy else heatmaps
    if not isinstance(hm, torch.Tensor):
        raise TypeError(f"heatmaps must be a torch.Tensor or numpy array, got {type(heatmaps).__name__}")
    if hm.dim() != 4:
        raise ValueError(f"heatmaps must have shape (B, J, H, W), got {tuple(hm.shape)}")
    if not hm.is_floating_point():
        hm = hm.float()
    elif hm.dtype in (torch.float16, torch.bfloat16):
        hm = hm.float()
    return hm, was_numpy


def _out(tensors, was_numpy):
    if was_numpy:
        return tuple(t.cpu().numpy() for t in tensors)
    return tuple(tensors)


def _max_preds(hm):
    """Argmax coords (float32, (0, 0) where max <= 0), maxvals (input dtype) and flat argmax."""
    b, j, h, w = hm.shape
    flat = hm.reshape(b, j, h * w)
    idx = torch.argmax(flat, dim=2)                     # first maximum in row-major order
    maxvals = torch.gather(flat, 2, idx.unsqueeze(-1))  # (B, J, 1)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(torch.float32)
    coords = coords * (maxvals > 0).to(torch.float32)
    return coords, maxvals, idx


def get_max_preds(heatmaps):
    """Per-map argmax of ``heatmaps`` (B, J, H, W).

    Returns ``(coords, maxvals)``: coords (B, J, 2) float32 integer heatmap pixels (x, y) of
    the first maximum in row-major order, set to (0, 0) where the maximum is <= 0; maxvals
    (B, J, 1) float32. Torch in -> torch out, numpy in -> numpy out.
    """
    hm, was_numpy = _as_tensor(heatmaps)
    if hm.shape[2] * hm.shape[3] == 0:
        raise ValueError(f"heatmaps must have non-empty maps, got {tuple(hm.shape)}")
    coords, maxvals, _ = _max_preds(hm)
    return _out((coords, maxvals.to(torch.float32)), was_numpy)


def _gather_at(flat, center_idx, offsets):
    """Values of ``flat`` (N, H*W) at ``center_idx`` (N,) + each flat offset; list of (N,)."""
    last = flat.shape[1] - 1  # clamp keeps tiny maps (where no step is taken) in range
    return [torch.gather(flat, 1, (center_idx + off).clamp(0, last).unsqueeze(1)).squeeze(1)
            for off in offsets]


def _basic_refine(hm, coords):
    b, j, h, w = hm.shape
    flat = hm.reshape(b * j, h * w)
    xy = coords.reshape(b * j, 2)
    px = torch.floor(xy[:, 0] + 0.5).long()
    py = torch.floor(xy[:, 1] + 0.5).long()
    valid = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    cx = px.clamp(1, max(w - 2, 1))
    cy = py.clamp(1, max(h - 2, 1))
    center = cy * w + cx
    right, left, down, up = _gather_at(flat, center, (1, -1, w, -w))
    step = torch.stack([torch.sign(right - left), torch.sign(down - up)], dim=1).to(torch.float32) * 0.25
    step = step * valid.unsqueeze(1).to(torch.float32)
    return (xy + step).reshape(b, j, 2)


def gaussian_kernel_1d(kernel, dtype=torch.float64, device=None):
    """OpenCV's ``getGaussianKernel(kernel, sigma)`` with ``sigma = 0.3*((kernel-1)/2 - 1) + 0.8``."""
    if not isinstance(kernel, (int, np.integer)) or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd integer, got {kernel!r}")
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    x = np.arange(kernel, dtype=np.float64) - (kernel - 1) * 0.5
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    g /= g.sum()
    return torch.as_tensor(g, dtype=dtype, device=device)


def _blur_rescaled(hm, maxvals, kernel):
    """Zero-padded same blur (float64), stored float32 and rescaled to the original maxima."""
    b, j, h, w = hm.shape
    g = gaussian_kernel_1d(kernel, dtype=torch.float64, device=hm.device)
    pad = kernel // 2
    x = hm.reshape(b * j, 1, h, w).to(torch.float64)
    x = F.conv2d(x, g.view(1, 1, 1, kernel), padding=(0, pad))
    x = F.conv2d(x, g.view(1, 1, kernel, 1), padding=(pad, 0))
    blurred = x.reshape(b, j, h * w).to(torch.float32)
    peak = blurred.amax(dim=2, keepdim=True)
    orig = maxvals.to(torch.float32)
    # An all-zero map has peak 0; the reference gets NaN there (harmless because its argmax
    # is (0, 0) and no Taylor step is taken); use factor 0 to keep every value finite.
    factor = torch.where(peak != 0, orig / torch.where(peak != 0, peak, torch.ones_like(peak)),
                         torch.zeros_like(peak))
    return blurred * factor                               # (B, J, H*W) float32


def _taylor_refine(log_flat, coords, h, w):
    """One Newton step of the log map at the integer part of ``coords`` (float64 math)."""
    n = log_flat.shape[0]
    xy = coords.reshape(n, 2)
    px = xy[:, 0].long()                                  # int() of non-negative values
    py = xy[:, 1].long()
    valid = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    cx = px.clamp(2, max(w - 3, 2))
    cy = py.clamp(2, max(h - 3, 2))
    center = cy * w + cx
    offsets = (0, 1, -1, 2, -2, w, -w, 2 * w, -2 * w, w + 1, -w + 1, w - 1, -w - 1)
    c, xp1, xm1, xp2, xm2, yp1, ym1, yp2, ym2, pp, mp, pm, mm = _gather_at(log_flat, center, offsets)
    dx = 0.5 * (xp1 - xm1)
    dy = 0.5 * (yp1 - ym1)
    dxx = 0.25 * (xp2 - 2 * c + xm2)
    dyy = 0.25 * (yp2 - 2 * c + ym2)
    dxy = 0.25 * (pp - mp - pm + mm)
    det = dxx * dyy - dxy * dxy
    ok = valid & (det != 0) & torch.isfinite(det)
    safe_det = torch.where(ok, det, torch.ones_like(det))
    off_x = -(dyy * dx - dxy * dy) / safe_det
    off_y = -(dxx * dy - dxy * dx) / safe_det
    step = torch.stack([off_x, off_y], dim=1) * ok.unsqueeze(1).to(off_x.dtype)
    return (xy.to(torch.float64) + step).to(torch.float32)


def decode_heatmaps(heatmaps, method="gauss_taylor", kernel=11):
    """Decode ``heatmaps`` (B, J, H, W) to ``(coords, maxvals)`` in heatmap pixels.

    ``method="basic"``: HRNet argmax + quarter offset: at ``(px, py) = floor(coord + 0.5)``,
    if ``1 < px < W-1`` and ``1 < py < H-1``, ``x += 0.25 sign(hm[py, px+1] - hm[py, px-1])``
    and likewise in y.
    ``method="gauss_taylor"`` (DARK): blur with a ``kernel``-tap Gaussian (odd, sigma by
    OpenCV's rule), rescale to the original maximum, log, and if ``1 < px < W-2`` and
    ``1 < py < H-2`` (``px, py`` the integer argmax) and the Hessian determinant is non-zero,
    ``coord -= H^-1 grad`` (no clamping).

    Coordinates (B, J, 2) float32 are (x, y) heatmap pixels, (0, 0) for maps whose maximum
    is <= 0 (all-zero or negative maps; no NaN is produced); maxvals (B, J, 1) float32 are
    the maxima of the input maps. Back-project with ``decoders.to_image_coords``.
    Torch in (any device) -> torch out; numpy in -> numpy out.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    hm, was_numpy = _as_tensor(heatmaps)
    b, j, h, w = hm.shape
    if h * w == 0:
        raise ValueError(f"heatmaps must have non-empty maps, got {tuple(hm.shape)}")
    with torch.no_grad():
        coords, maxvals, _ = _max_preds(hm)
        if method == "basic":
            coords = _basic_refine(hm, coords)
        else:
            blurred = _blur_rescaled(hm, maxvals, kernel)
            log_flat = torch.log(torch.clamp(blurred.to(torch.float64), min=1e-10)).reshape(b * j, h * w)
            coords = _taylor_refine(log_flat, coords, h, w).reshape(b, j, 2)
    return _out((coords, maxvals.to(torch.float32)), was_numpy)
