"""Heatmap target encoders against targets.npz (HRNet exact, DarkPose within 2e-6)."""
import numpy as np
import pytest

from datasets.targets import generate_heatmaps, generate_heatmaps_from_hm_coords
from datasets.transforms import affine_transform, get_affine_transform

DARK_ATOL = 2e-6


@pytest.fixture(scope="module")
def targets(vectors_dir):
    with np.load(vectors_dir / "targets.npz") as data:
        return {k: data[k] for k in data.files}


def _encode(targets, joints_key, vis_key, unbiased):
    image_size = tuple(int(v) for v in targets["image_size"])
    heatmap_size = tuple(int(v) for v in targets["heatmap_size"])
    out = [generate_heatmaps(j, v, image_size, heatmap_size, float(targets["sigma"]), unbiased=unbiased)
           for j, v in zip(targets[joints_key], targets[vis_key])]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


@pytest.mark.parametrize("joints_key, vis_key, prefix", [
    ("joints_crop", "joints_vis", ""),
    ("edge_joints_crop", "edge_joints_vis", "edge_"),
])
def test_hrnet_targets_bit_exact(targets, joints_key, vis_key, prefix):
    heatmaps, weight = _encode(targets, joints_key, vis_key, unbiased=False)
    assert heatmaps.dtype == np.float32 and weight.dtype == np.float32
    assert heatmaps.shape[1:] == (17, 64, 48) and weight.shape[1:] == (17, 1)
    np.testing.assert_array_equal(weight, targets[prefix + "target_weight"])
    np.testing.assert_array_equal(heatmaps, targets[prefix + "target"])


@pytest.mark.parametrize("joints_key, vis_key, ref", [
    ("joints_crop", "joints_vis", "dark_enc_target"),
    ("edge_joints_crop", "edge_joints_vis", "edge_dark_target"),
])
def test_darkpose_encoder_from_crop_pixels(targets, joints_key, vis_key, ref):
    heatmaps, weight = _encode(targets, joints_key, vis_key, unbiased=True)
    np.testing.assert_array_equal(weight, targets[ref + "_weight"])
    np.testing.assert_allclose(heatmaps, targets[ref], rtol=0, atol=DARK_ATOL)
    assert heatmaps.max() > 0.9  # sub-pixel peaks, not empty maps


def test_darkpose_target_from_heatmap_joints(targets):
    out = [generate_heatmaps_from_hm_coords(j, v, (48, 64), float(targets["sigma"]))
           for j, v in zip(targets["dark_joints_hm"], targets["joints_vis"])]
    np.testing.assert_array_equal(np.stack([o[1] for o in out]), targets["dark_target_weight"])
    np.testing.assert_allclose(np.stack([o[0] for o in out]), targets["dark_target"], rtol=0, atol=DARK_ATOL)


def test_joint_inputs_follow_the_reference_affines(targets):
    """joints_crop / dark_joints_hm are the visible image joints through the two affines."""
    for i in range(len(targets["center"])):
        vis = targets["joints_vis"][i][:, 0] > 0
        trans = get_affine_transform(targets["center"][i], targets["scale"][i], 0, (192, 256))
        got = affine_transform(targets["joints_img"][i][vis, :2], trans)
        np.testing.assert_allclose(got, targets["joints_crop"][i][vis, :2], rtol=0, atol=1e-9)
        trans_hm = get_affine_transform(targets["dark_center"][i], targets["dark_scale"][i], 0, (48, 64),
                                        unbiased=True)
        got = affine_transform(targets["joints_img"][i][vis, :2], trans_hm)
        np.testing.assert_allclose(got, targets["dark_joints_hm"][i][vis, :2], rtol=0, atol=1e-9)


def test_visibility_shapes_and_errors():
    joints = np.array([[96.0, 128.0], [-40.0, 10.0], [20.0, 30.0]])
    for vis in ([1, 1, 0], [[1], [1], [0]], [[1, 1, 0], [1, 1, 0], [0, 0, 0]]):
        hm, w = generate_heatmaps(joints, np.array(vis, dtype=float), (192, 256), (48, 64), 2)
        np.testing.assert_array_equal(w[:, 0], [1, 0, 0])           # off-map joint -> weight 0
        assert hm[0, 32, 24] == 1.0 and hm[0].sum() > 10 and not hm[1:].any()
    with pytest.raises(ValueError, match=r"\(J, 2\) or \(J, 3\)"):
        generate_heatmaps(np.zeros((3, 4)), np.ones(3), (192, 256), (48, 64), 2)
    with pytest.raises(ValueError, match=r"joints_vis must have shape \(3,\)"):
        generate_heatmaps(joints, np.ones(4), (192, 256), (48, 64), 2)
