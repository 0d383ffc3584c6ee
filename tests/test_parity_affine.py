"""Affine matrices, point mapping, crops and the half-body box against affine.npz."""
import cv2
import numpy as np
import pytest

from datasets.coco_meta import UPPER_BODY_IDS
from datasets.transforms import (affine_transform, crop_image, get_affine_transform,
                                 half_body_center_scale)

VARIANTS = {
    "trans": ("output_size", False, False),
    "trans_inv": ("output_size", True, False),
    "trans_hm": ("heatmap_size", False, False),
    "trans_hm_inv": ("heatmap_size", True, False),
    "dark_trans": ("output_size", False, True),
    "dark_trans_inv": ("output_size", True, True),
    "dark_trans_hm": ("heatmap_size", False, True),
    "dark_trans_hm_inv": ("heatmap_size", True, True),
}


@pytest.fixture(scope="module")
def affine(vectors_dir):
    with np.load(vectors_dir / "affine.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_matrices_bit_exact(affine, name):
    size_key, inv, unbiased = VARIANTS[name]
    size = tuple(int(v) for v in affine[size_key])
    mats = np.stack([
        get_affine_transform(affine["center"][i], affine["scale"][i], affine["rot"][i], size,
                             inv=inv, unbiased=unbiased)
        for i in range(len(affine["rot"]))
    ])
    assert mats.dtype == np.float64
    np.testing.assert_array_equal(mats, affine[name])


@pytest.mark.parametrize("unbiased, key, mid", [(False, "points_crop", (96, 128)),
                                                 (True, "points_crop_dark", (95.5, 127.5))])
def test_points(affine, unbiased, key, mid):
    size = tuple(int(v) for v in affine["output_size"])
    for i in range(len(affine["rot"])):
        trans = get_affine_transform(affine["center"][i], affine["scale"][i], affine["rot"][i], size,
                                     unbiased=unbiased)
        got = affine_transform(affine["points"][i], trans)
        np.testing.assert_allclose(got, affine[key][i], rtol=0, atol=1e-9, err_msg=f"triple {i}")
        np.testing.assert_allclose(got[0], mid, atol=1e-3)
        back = get_affine_transform(affine["center"][i], affine["scale"][i], affine["rot"][i], size,
                                    inv=True, unbiased=unbiased)
        np.testing.assert_allclose(affine_transform(got, back), affine["points"][i], atol=1e-3)
    # A single point keeps its (2,) shape.
    assert affine_transform(np.array([1.0, 2.0]), np.eye(2, 3)).shape == (2,)


def test_crops_exact_for_this_opencv_major(affine):
    major = int(cv2.__version__.split(".")[0])
    key = {5: "crops", 4: "crops_opencv4"}.get(major)
    if key is None:
        pytest.skip(f"no reference crops for OpenCV {cv2.__version__}")
    size = tuple(int(v) for v in affine["output_size"])
    for k, image_id in enumerate(affine["crop_image_ids"]):
        image = affine[f"image_{image_id}"]
        crop = crop_image(image, affine["center"][k], affine["scale"][k], affine["rot"][k], size)
        assert crop.shape == (size[1], size[0], 3) and crop.dtype == np.uint8
        np.testing.assert_array_equal(crop, affine[key][k], err_msg=f"crop {k}")


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(2,\)"):
        get_affine_transform(np.zeros(3), np.ones(2), 0, (192, 256))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        affine_transform(np.zeros((4, 2)), np.eye(3))


def test_half_body_box():
    rng = np.random.default_rng(0)
    joints = np.zeros((17, 3))
    joints[:, 0] = np.linspace(100, 180, 17)
    joints[:, 1] = np.linspace(50, 450, 17)
    vis = np.ones((17, 3))
    seen = set()
    for _ in range(40):
        center, scale = half_body_center_scale(joints, vis, 0.75, UPPER_BODY_IDS, rng)
        upper = center[1] < 250
        seen.add(bool(upper))
        sel = joints[:11] if upper else joints[11:]
        np.testing.assert_allclose(center, sel[:, :2].mean(0), rtol=1e-6)
        h = sel[:, 1].max() - sel[:, 1].min()           # tall boxes: width = 0.75 h
        np.testing.assert_allclose(scale, [0.75 * h / 200 * 1.5, h / 200 * 1.5], rtol=1e-6)
    assert seen == {True, False}
    # Only the lower body visible (6 joints): always the lower box; one visible joint: None.
    vis_lower = np.zeros((17, 3))
    vis_lower[11:] = 1
    center, _ = half_body_center_scale(joints, vis_lower, 0.75, UPPER_BODY_IDS, rng)
    np.testing.assert_allclose(center, joints[11:, :2].mean(0), rtol=1e-6)
    vis_one = np.zeros((17, 3))
    vis_one[3] = 1
    assert half_body_center_scale(joints, vis_one, 0.75, UPPER_BODY_IDS, rng) is None
