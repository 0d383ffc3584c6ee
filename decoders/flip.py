"""Flip test: bring the heatmaps of a horizontally flipped input back, and fuse them.

``flip_back(x)[..., j, :, :] = x[..., swap(j), :, ::-1]`` with ``swap`` exchanging each
left/right pair (HRNet's ``flip_back``, without writing into the input). ``fuse_flip``
averages the original and flipped-back maps; with ``shift=True`` the flipped-back maps are
first shifted one column right (column 0 keeps its value), HRNet's TEST.SHIFT_HEATMAP.
Maps are ``(B, J, H, W)`` (or ``(J, H, W)``); numpy or torch in, the same type out.
"""
import numpy as np
import torch

from datasets.coco_meta import flip_permutation


def _check(heatmaps, name):
    if not isinstance(heatmaps, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(heatmaps).__name__}")
    if heatmaps.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (B, J, H, W) or (J, H, W), got {tuple(heatmaps.shape)}")


def flip_back(heatmaps, flip_pairs):
    """Mirror every map's columns and swap the channels of each flip pair; returns a new array."""
    _check(heatmaps, "heatmaps")
    perm = flip_permutation(heatmaps.shape[-3], flip_pairs)
    if isinstance(heatmaps, torch.Tensor):
        index = torch.as_tensor(perm, device=heatmaps.device)
        return heatmaps.index_select(heatmaps.dim() - 3, index).flip(-1)
    return np.ascontiguousarray(heatmaps[..., perm, :, ::-1])


def fuse_flip(heatmaps, heatmaps_flipped, flip_pairs, shift=True):
    """``(heatmaps + flip_back(heatmaps_flipped) [shifted one column right]) * 0.5``.

    ``heatmaps`` is the output on the input, ``heatmaps_flipped`` the output on the
    horizontally flipped input, both (B, J, H, W) of the same type; neither is modified.
    """
    _check(heatmaps, "heatmaps")
    _check(heatmaps_flipped, "heatmaps_flipped")
    if tuple(heatmaps.shape) != tuple(heatmaps_flipped.shape):
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} and heatmaps_flipped "
                         f"{tuple(heatmaps_flipped.shape)} must have the same shape")
    back = flip_back(heatmaps_flipped, flip_pairs)
    if shift:
        if isinstance(back, torch.Tensor):
            back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)
        else:
            back = np.concatenate([back[..., :1], back[..., :-1]], axis=-1)
    return (heatmaps + back) * 0.5
