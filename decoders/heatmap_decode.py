"""Heatmap -> joint coordinates (heatmap pixels), batched, without Python loops over samples or joints.

Two methods:

* ``"basic"`` (HRNet ``get_final_preds`` with POST_PROCESS): argmax, then a quarter-pixel
  step toward the higher neighbour in x and in y.
* ``"gauss_taylor"`` (DarkPose / DARK): argmax, Gaussian blur of every map (zero-padded
  'same' convolution with OpenCV's ``kernel``-tap Gaussian, rescaled to the original map
  maximum), ``log(max(hm, 1e-10))``, then one Newton step from the argmax using the
  finite-difference gradient and Hessian of the log map.

Coordinates are ``x`` (column) before ``y`` (row) with pixel centres at integers; maps are
``(B, J, H, W)``. Numpy input gives numpy output, torch input gives torch output on the
same device. Returned coordinates and maxvals are float32.

Backends: numpy arrays and CPU tensors are decoded with numpy (``np.argmax`` and small gathers are
10x faster than torch's CPU kernels, which also pay thread start-up on every call); tensors on other
devices (CUDA) stay there. The code is written once: ``xp`` is the array module (``np`` or ``torch``).

DARK reads the blurred map only at 13 pixels (the finite differences around the argmax), and the
differences of its log do not change when the map is rescaled. So for each map the ``kernel + 4``
square of input pixels around the argmax is gathered (pixels off the map read as 0: the reference's
zero padding, borders included) and blurred at those 13 pixels by one matrix product in float64; the
whole-map blur and the rescale are skipped. The rescale still matters through the ``1e-10`` floor of
the log: the factor is ``max(map) / max(blurred)`` >= 1 (the blur's weights sum to <= 1), so the floor
cannot act where the 13 blurred values are >= ``2e-10``; maps with a smaller one take the exact
full-map path (whole blur, float32 storage and rescale, floor), as the reference does.

Precision: the argmax, the maxima and the basic quarter offsets use the input values
(float16/bfloat16 are promoted to float32), so "basic" is bit-identical to HRNet. The DARK
blur, log and Taylor step are float64 (the reference blurs a float64 copy, stores it float32,
rescales and does the Taylor step in float32), so on well-conditioned peaks the two agree to
~1e-3 heatmap pixel (skipping the float32 storage of the blurred map moves them by ~1e-6); on
ill-conditioned maps (pure noise, flat plateaus) the step is sensitive to rounding in any
precision (the reference itself moves by hundreds of pixels between float32 and float64 input
there). Float64 is used on every device: the work is a few hundred values a map.
"""
import functools

import numpy as np
import torch

_METHODS = ("basic", "gauss_taylor")
_LOG_FLOOR = 1e-10      # the reference's np.maximum(hm, 1e-10) before the log
_FLOOR_SAFE = 2e-10     # raw blurred values >= this stay above the floor after the rescale (factor >= 1)
# The 13 pixels of the finite differences as (dx, dy) around the argmax: centre, x +-1, x +-2, y +-1,
# y +-2, then (+1, +1), (+1, -1), (-1, +1), (-1, -1).
_TAPS = ((0, 0), (1, 0), (-1, 0), (2, 0), (-2, 0), (0, 1), (0, -1), (0, 2), (0, -2),
         (1, 1), (1, -1), (-1, 1), (-1, -1))


def _prepare(heatmaps):
    """``(maps, xp, kind)``: float32/64 maps as numpy (numpy input, CPU tensors) or torch (other devices)."""
    if isinstance(heatmaps, np.ndarray):
        hm, kind = heatmaps, "numpy"
        if hm.dtype not in (np.float32, np.float64):
            hm = hm.astype(np.float32)
    elif isinstance(heatmaps, torch.Tensor):
        hm = heatmaps.detach()
        if hm.dtype not in (torch.float32, torch.float64):
            hm = hm.float()
        kind = "cpu" if hm.device.type == "cpu" else "torch"
        if kind == "cpu":
            hm = hm.resolve_neg().numpy()
    else:
        raise TypeError(f"heatmaps must be a torch.Tensor or numpy array, got {type(heatmaps).__name__}")
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must have shape (B, J, H, W), got {tuple(hm.shape)}")
    if hm.shape[2] * hm.shape[3] == 0:
        raise ValueError(f"heatmaps must have non-empty maps, got {tuple(hm.shape)}")
    return hm, (torch if kind == "torch" else np), kind


def _out(arrays, kind):
    if kind == "cpu":
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    return tuple(arrays)


def _cast(a, xp, dtype):
    """``a`` as ``xp``'s ``dtype`` (e.g. ``"float64"``)."""
    return a.astype(getattr(np, dtype)) if xp is np else a.to(getattr(torch, dtype))


def _like(array, xp, ref):
    """Numpy ``array`` in ``xp`` (on the device of ``ref``)."""
    return array if xp is np else torch.tensor(array, device=ref.device)


def _max_preds(flat, w, xp):
    """``flat`` (N, H*W) -> maxvals (N,) in the input dtype and the integer coords px, py (N,) of the
    first maximum in row-major order, set to 0 where the maximum is <= 0."""
    idx = xp.argmax(flat, 1)
    maxvals = xp.take(flat, _like(np.arange(flat.shape[0]) * flat.shape[1], xp, flat) + idx)
    positive = maxvals > 0
    px = xp.where(positive, idx % w, 0)
    py = xp.where(positive, idx // w, 0)
    return maxvals, px, py


def _coords(x, y, xp):
    return _cast(xp.stack([x, y], 1), xp, "float32")


def get_max_preds(heatmaps):
    """Per-map argmax of ``heatmaps`` (B, J, H, W).

    Returns ``(coords, maxvals)``: coords (B, J, 2) float32 integer heatmap pixels (x, y) of
    the first maximum in row-major order, set to (0, 0) where the maximum is <= 0; maxvals
    (B, J, 1) float32. Torch in -> torch out (same device), numpy in -> numpy out.
    """
    hm, xp, kind = _prepare(heatmaps)
    b, j, h, w = hm.shape
    maxvals, px, py = _max_preds(hm.reshape(b * j, h * w), w, xp)
    return _out((_coords(px, py, xp).reshape(b, j, 2), _cast(maxvals, xp, "float32").reshape(b, j, 1)), kind)


def _gather(flat, center, offsets, xp):
    """Values of ``flat`` (N, H*W) at flat index ``center`` (N,) + each of ``offsets``: (N, len(offsets))."""
    n, size = flat.shape
    base = _like(np.arange(n) * size, xp, flat)
    index = xp.clip(center[:, None] + _like(np.asarray(offsets), xp, flat)[None, :], 0, size - 1)
    return xp.take(flat, base[:, None] + index)   # clip keeps tiny maps (where no step is taken) in range


def _basic_refine(flat, px, py, h, w, xp):
    """HRNet's quarter offset at the integer argmax (px, py): (x, y) float32 (N,) each."""
    valid = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    center = xp.clip(py, 1, max(h - 2, 1)) * w + xp.clip(px, 1, max(w - 2, 1))
    v = _gather(flat, center, (1, -1, w, -w), xp)
    step_x = xp.where(valid, xp.sign(v[:, 0] - v[:, 1]) * 0.25, 0)
    step_y = xp.where(valid, xp.sign(v[:, 2] - v[:, 3]) * 0.25, 0)
    return _coords(px, py, xp) + _cast(xp.stack([step_x, step_y], 1), xp, "float32")


def _check_kernel(kernel):
    if not isinstance(kernel, (int, np.integer)) or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd integer, got {kernel!r}")


def gaussian_kernel_1d(kernel):
    """OpenCV's ``getGaussianKernel(kernel, sigma)``, ``sigma = 0.3*((kernel-1)/2 - 1) + 0.8``: float64 numpy."""
    _check_kernel(kernel)
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    x = np.arange(kernel, dtype=np.float64) - (kernel - 1) * 0.5
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _blur_matrix(g, size_in, first_out, size_out):
    """M (size_in, size_out) with ``(x @ M)[o] = sum_i x[i] g[i - (first_out + o) + r]``: a 'same'
    correlation with ``g`` (radius r) whose input is zero outside ``0..size_in-1``."""
    r = len(g) // 2
    tap = np.arange(size_in)[:, None] - (first_out + np.arange(size_out))[None, :] + r
    return np.where((tap >= 0) & (tap < len(g)), g[np.clip(tap, 0, len(g) - 1)], 0.0)


def _matmul(a, b, xp):
    """``a @ b`` for a tall ``a``. Numpy: in blocks of rows below OpenBLAS's threading threshold
    (m*n*k <= 2**18). These products take well under a millisecond single-threaded; handing them to BLAS
    threads made them up to 10x slower on a busy host, and BLAS threads ignore ``torch.set_num_threads``."""
    if xp is not np:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    rows = max(1, (1 << 18) // (b.shape[0] * b.shape[1]))
    for start in range(0, a.shape[0], rows):
        np.matmul(a[start:start + rows], b, out=out[start:start + rows])
    return out


def _row_runs(flat, size, xp):
    """``(values, runs)``: the batch flattened (zero-padded to >= ``size`` values) and every run of ``size``
    consecutive values of it, ``runs[k] = values[k:k + size]`` (L >= 1 runs, a view; in numpy each run is
    one opaque item of ``size`` values, so that gathering runs copies whole runs)."""
    values = flat.reshape(-1)
    if xp is not np:
        if values.shape[0] < size:
            values = torch.cat([values, values.new_zeros(size - values.shape[0])])
        return values, values.unfold(0, size, 1)
    values = np.ascontiguousarray(values)
    if values.shape[0] < size:
        values = np.concatenate([values, np.zeros(size - values.shape[0], values.dtype)])
    item = values.dtype.itemsize
    return values, np.ndarray((values.shape[0] - size + 1,), np.dtype((np.void, size * item)),
                              buffer=values, strides=(item,))


@functools.lru_cache(maxsize=8)
def _window_taps(kernel):
    """(size*size, 13) float64: the zero-padded blur at the 13 taps as weights of the (size x size) input
    window centred on the argmax, size = kernel + 4."""
    g = gaussian_kernel_1d(kernel)
    size = kernel + 4
    across = _blur_matrix(g, size, kernel // 2, 5)        # (size, 5): window column -> output column
    weights = across[:, None, :, None] * across[None, :, None, :]   # [row, col, out dy, out dx]
    taps = np.stack([weights[:, :, dy + 2, dx + 2].reshape(-1) for dx, dy in _TAPS], 1)
    taps.flags.writeable = False
    return taps


def _blurred_taps(flat, cx, cy, h, w, kernel, xp):
    """Zero-padded blur of each map at the 13 taps around (cx, cy): float64 (N, 13).

    The (size x size) input window, size = kernel + 4, is gathered as ``size`` runs of consecutive values
    of the flattened batch, one per window row. Runs that cross a map's left or right edge read into the
    neighbouring rows, and window rows above or below the map repeat its first or last row: these
    columns and rows are set to zero (the reference's zero padding)."""
    n = flat.shape[0]
    size = kernel + 4
    half = size // 2
    d = _like(np.arange(size) - half, xp, flat)
    rows, cols = cy[:, None] + d, cx[:, None] + d           # (N, size) window rows / columns in the map
    base = _like(np.arange(n) * (h * w), xp, flat)
    starts = (base + cx - half)[:, None] + xp.clip(rows, 0, h - 1) * w
    values, runs = _row_runs(flat, size, xp)
    last = runs.shape[0] - 1
    patch = runs[xp.clip(starts, 0, last)]                   # (N, size) runs, a copy
    patch = (patch.view(values.dtype) if xp is np else patch).reshape(n, size, size)
    outside = (starts < 0) | (starts > last)               # runs past either end of the batch
    if bool(outside.any()):
        at = xp.clip(starts[outside][:, None] + d[None, :] + half, 0, values.shape[0] - 1)
        patch[outside] = values[at]                        # the values out of range are off the map
    patch[(rows < 0) | (rows >= h)] = 0
    patch.swapaxes(1, 2)[(cols < 0) | (cols >= w)] = 0
    taps = _like(_window_taps(kernel), xp, flat)
    return _matmul(_cast(patch, xp, "float64").reshape(n, size * size), taps, xp)


def _blur_rescaled_taps(flat, maxvals, cx, cy, h, w, kernel, xp):
    """The exact full-map path at the 13 taps: whole-map zero-padded blur (float64), stored float32,
    rescaled to the original maxima in float32 (factor 0 for an all-zero blur, where the reference gets
    NaN: harmless there, as no step is taken)."""
    n = flat.shape[0]
    g = gaussian_kernel_1d(kernel)
    across = _like(_blur_matrix(g, w, 0, w), xp, flat)
    down = _like(_blur_matrix(g, h, 0, h), xp, flat)
    maps = _matmul(_cast(flat, xp, "float64").reshape(n * h, w), across, xp)
    maps = _matmul(maps.reshape(n, h, w).swapaxes(1, 2).reshape(n * w, h), down, xp)
    blurred = _cast(maps.reshape(n, w, h).swapaxes(1, 2).reshape(n, h * w), xp, "float32")
    peak = xp.amax(blurred, 1)
    factor = xp.where(peak != 0, _cast(maxvals, xp, "float32") / xp.where(peak != 0, peak, 1), 0)
    taps = _gather(blurred, cy * w + cx, [dy * w + dx for dx, dy in _TAPS], xp)
    return _cast(taps * factor[:, None], xp, "float64")


def _dark_refine(flat, maxvals, px, py, h, w, kernel, xp):
    """One Newton step of the log of the blurred, rescaled map at the integer argmax (float64 math)."""
    valid = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    cx = xp.clip(px, 2, max(w - 3, 2))
    cy = xp.clip(py, 2, max(h - 3, 2))
    taps = _blurred_taps(flat, cx, cy, h, w, kernel, xp)
    near_floor = valid & (xp.amin(taps, 1) < _FLOOR_SAFE)
    if bool(near_floor.any()):
        taps[near_floor] = _blur_rescaled_taps(flat[near_floor], maxvals[near_floor], cx[near_floor],
                                               cy[near_floor], h, w, kernel, xp)
    c, xp1, xm1, xp2, xm2, yp1, ym1, yp2, ym2, pp, pm, mp, mm = (
        xp.log(xp.clip(taps, _LOG_FLOOR, None)).T)
    dx = 0.5 * (xp1 - xm1)
    dy = 0.5 * (yp1 - ym1)
    dxx = 0.25 * (xp2 - 2 * c + xm2)
    dyy = 0.25 * (yp2 - 2 * c + ym2)
    dxy = 0.25 * (pp - pm - mp + mm)
    det = dxx * dyy - dxy * dxy
    ok = valid & (det != 0) & xp.isfinite(det)
    safe_det = xp.where(ok, det, 1.0)
    off_x = xp.where(ok, -(dyy * dx - dxy * dy) / safe_det, 0.0)
    off_y = xp.where(ok, -(dxx * dy - dxy * dx) / safe_det, 0.0)
    coords = xp.stack([_cast(px, xp, "float64") + off_x, _cast(py, xp, "float64") + off_y], 1)
    return _cast(coords, xp, "float32")


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
    Torch in (any device) -> torch out on that device; numpy in -> numpy out. CPU inputs are
    decoded with numpy, other devices with torch (see the module docstring).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "gauss_taylor":
        _check_kernel(kernel)
    hm, xp, kind = _prepare(heatmaps)
    b, j, h, w = hm.shape
    flat = hm.reshape(b * j, h * w)
    maxvals, px, py = _max_preds(flat, w, xp)             # (no autograd: the input is detached)
    if method == "basic":
        coords = _basic_refine(flat, px, py, h, w, xp)
    else:
        coords = _dark_refine(flat, maxvals, px, py, h, w, kernel, xp)
    return _out((coords.reshape(b, j, 2), _cast(maxvals, xp, "float32").reshape(b, j, 1)), kind)
