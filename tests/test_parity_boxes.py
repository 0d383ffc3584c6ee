"""Box sanitising and box -> (center, scale) against boxes.npz (HRNet and DarkPose rules)."""
import numpy as np
import pytest

from datasets.transforms import box_to_center_scale, clean_bbox


@pytest.fixture(scope="module")
def boxes(vectors_dir):
    with np.load(vectors_dir / "boxes.npz") as data:
        return {k: data[k] for k in data.files}


def test_clean_bbox_hrnet_and_darkpose_bit_exact(boxes):
    assert boxes["in_db"].any()
    for i in range(len(boxes["bbox"])):
        args = (boxes["bbox"][i], boxes["image_wh"][i])
        hr = clean_bbox(*args, area=boxes["area"][i])
        dk = clean_bbox(*args, unbiased=True, area=boxes["area"][i])
        if not boxes["in_db"][i]:
            continue
        assert hr is not None and dk is not None, f"row {i} was kept by the reference"
        np.testing.assert_array_equal(hr, boxes["clean_bbox"][i], err_msg=f"row {i}")
        np.testing.assert_array_equal(dk, boxes["dark_clean_bbox"][i], err_msg=f"row {i}")


def test_clean_bbox_clips_and_drops():
    # Box sticking out of a 100x50 image on every side is clipped to it.
    np.testing.assert_array_equal(clean_bbox([-5, -3, 200, 80], (100, 50)), [0, 0, 99, 49])
    np.testing.assert_array_equal(clean_bbox([-5, -3, 200, 80], (100, 50), unbiased=True), [0, 0, 100, 50])
    assert clean_bbox([120, 10, 5, 5], (100, 50)) is None          # right of the image
    assert clean_bbox([10, 10, 5, 5], (100, 50), area=0.0) is None  # zero annotation area
    assert clean_bbox([10, 10, 5, 5], (100, 50), area=3.0) is not None
    with pytest.raises(ValueError, match=r"\(4,\)"):
        clean_bbox([1, 2, 3], (100, 50))


@pytest.mark.parametrize("box_key, unbiased, center_key, scale_key", [
    ("clean_bbox", False, "center", "scale"),
    ("bbox", False, "center_rawbox", "scale_rawbox"),
    ("dark_clean_bbox", True, "dark_center", "dark_scale"),
    ("bbox", True, "dark_center_rawbox", "dark_scale_rawbox"),
])
def test_box_to_center_scale_bit_exact(boxes, box_key, unbiased, center_key, scale_key):
    aspect = float(boxes["aspect_ratio"])
    assert aspect == pytest.approx(0.75)
    rows = np.flatnonzero(boxes["in_db"]) if box_key != "bbox" else np.arange(len(boxes["bbox"]))
    centers, scales = zip(*(box_to_center_scale(boxes[box_key][i], aspect, unbiased=unbiased) for i in rows))
    centers, scales = np.stack(centers), np.stack(scales)
    assert centers.dtype == np.float32 and scales.dtype == np.float32
    np.testing.assert_array_equal(centers, boxes[center_key][rows])
    np.testing.assert_array_equal(scales, boxes[scale_key][rows])


def test_box_to_center_scale_aspect_rule():
    # Tall box: width grows to 0.75 h; wide box: height grows to w / 0.75.
    c, s = box_to_center_scale([10, 20, 30, 400], 0.75)
    np.testing.assert_allclose(c, [25, 220])
    np.testing.assert_allclose(s, [300 / 200 * 1.25, 400 / 200 * 1.25], rtol=1e-7)
    _, s = box_to_center_scale([0, 0, 300, 100], 0.75, padding=1.0)
    np.testing.assert_allclose(s, [1.5, 2.0], rtol=1e-7)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        box_to_center_scale([0, 0, 1], 0.75)
