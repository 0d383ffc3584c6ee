"""Flip test (flip_back, shift, average) and the training flip against flip.npz."""
import numpy as np
import pytest
import torch

from datasets.coco_meta import FLIP_PAIRS
from datasets.transforms import fliplr_joints
from decoders import decode_heatmaps, flip_back, fuse_flip, to_image_coords


@pytest.fixture(scope="module")
def flip(vectors_dir):
    with np.load(vectors_dir / "flip.npz") as data:
        return {k: data[k] for k in data.files}


def test_flip_pairs_are_coco(flip):
    np.testing.assert_array_equal(flip["flip_pairs"], np.array(FLIP_PAIRS))


def test_flip_back_exact_and_input_untouched(flip):
    src = flip["heatmaps_flipped"].copy()
    out = flip_back(src, flip["flip_pairs"])
    np.testing.assert_array_equal(src, flip["heatmaps_flipped"])
    np.testing.assert_array_equal(out, flip["flip_back"])
    t = torch.from_numpy(src)
    out_t = flip_back(t, FLIP_PAIRS)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), flip["flip_back"])
    np.testing.assert_array_equal(t.numpy(), flip["heatmaps_flipped"])
    # (J, H, W) works too, and flipping twice is the identity.
    np.testing.assert_array_equal(flip_back(out[0], FLIP_PAIRS), src[0])


@pytest.mark.parametrize("shift, key", [(True, "averaged_shift"), (False, "averaged_noshift")])
def test_fuse_flip_exact(flip, shift, key):
    fused = fuse_flip(flip["heatmaps"], flip["heatmaps_flipped"], FLIP_PAIRS, shift=shift)
    assert fused.dtype == np.float32
    np.testing.assert_array_equal(fused, flip[key])
    fused_t = fuse_flip(torch.from_numpy(flip["heatmaps"]), torch.from_numpy(flip["heatmaps_flipped"]),
                        FLIP_PAIRS, shift=shift)
    np.testing.assert_array_equal(fused_t.numpy(), flip[key])
    if shift:
        back = flip["flip_back"]
        np.testing.assert_array_equal(flip["flip_back_shifted"][..., 0], back[..., 0])


def test_decode_fused_maps(flip):
    fused = fuse_flip(flip["heatmaps"], flip["heatmaps_flipped"], FLIP_PAIRS, shift=True)
    coords, maxvals = decode_heatmaps(fused, method="basic")
    preds = to_image_coords(coords, flip["center"], flip["scale"], (48, 64))
    np.testing.assert_allclose(preds, flip["hrnet_preds_shift"], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(maxvals, flip["hrnet_maxvals_shift"])
    fused = fuse_flip(flip["heatmaps"], flip["heatmaps_flipped"], FLIP_PAIRS, shift=False)
    coords, maxvals = decode_heatmaps(fused, method="gauss_taylor")
    preds = to_image_coords(coords, flip["center"], flip["scale"], (48, 64), unbiased=True)
    np.testing.assert_allclose(preds, flip["dark_preds_noshift"], rtol=0, atol=1e-2)
    np.testing.assert_array_equal(maxvals, flip["dark_maxvals_noshift"])


def test_fliplr_joints_exact(flip):
    for i in range(len(flip["fliplr_image_width"])):
        joints_in = flip["fliplr_joints_in"][i].copy()
        joints, vis = fliplr_joints(joints_in, flip["fliplr_joints_vis_in"][i],
                                    flip["fliplr_image_width"][i], FLIP_PAIRS)
        np.testing.assert_array_equal(joints_in, flip["fliplr_joints_in"][i])
        np.testing.assert_array_equal(joints, flip["fliplr_joints_out"][i])
        np.testing.assert_array_equal(vis, flip["fliplr_joints_vis_out"][i])
    cx = flip["fliplr_image_width"] - flip["fliplr_center_in"][:, 0] - 1
    np.testing.assert_array_equal(cx.astype(np.float32), flip["fliplr_center_out"][:, 0])


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, J, H, W\)"):
        flip_back(np.zeros((64, 48)), FLIP_PAIRS)
    with pytest.raises(ValueError, match="same shape"):
        fuse_flip(np.zeros((1, 17, 8, 8)), np.zeros((1, 17, 8, 9)), FLIP_PAIRS)
    with pytest.raises(ValueError, match="out of range"):
        flip_back(np.zeros((1, 5, 8, 8)), FLIP_PAIRS)
