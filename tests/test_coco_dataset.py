"""COCO top-down dataset on real COCO files: reference instance rules, targets, augmentation."""
import json

import cv2
import numpy as np
import pytest

from datasets.coco import COCOKeypoints, DatasetError
from datasets.coco_meta import flip_permutation
from decoders import build_codec
from processors.config import validate


def data_cfg(ann, img_root, **data):
    raw = {"data": {"train_ann": str(ann), "train_img_root": str(img_root), "val_ann": str(ann),
                    "val_img_root": str(img_root), **data}}
    cfg = validate(raw)
    return cfg.data, build_codec(cfg)


def dataset(ann, img_root, cfg_and_codec, **kw):
    data, codec = cfg_and_codec
    return COCOKeypoints(ann, img_root, data, codec=codec, **kw)


@pytest.fixture(scope="module")
def coco_mini(shared_data_dir):
    root = shared_data_dir / "coco_mini"
    return root / "annotations" / "person_keypoints_train2017.json", root / "train2017"


def test_gt_instances_follow_reference_rules(coco_mini, vectors_dir):
    ann, img_root = coco_mini
    boxes = np.load(vectors_dir / "boxes.npz")
    ds = dataset(ann, img_root, data_cfg(ann, img_root), train=False)
    assert len(ds) == int(boxes["in_db"].sum()) == 86
    order = np.argsort(boxes["db_index"][boxes["in_db"]])
    kept = np.flatnonzero(boxes["in_db"])[order]
    assert [r["ann_id"] for r in ds.db] == boxes["ann_id"][kept].tolist()
    np.testing.assert_array_equal(np.stack([r["center"] for r in ds.db]), boxes["center"][kept])
    np.testing.assert_array_equal(np.stack([r["scale"] for r in ds.db]), boxes["scale"][kept])


def test_test_mode_items_reproduce_reference_targets(coco_mini, vectors_dir):
    ann, img_root = coco_mini
    ref = np.load(vectors_dir / "targets.npz")
    ds = dataset(ann, img_root, data_cfg(ann, img_root), train=False)
    for k, db_index in enumerate(ref["db_index"]):
        image, target, weight, meta = ds[int(db_index)]
        assert image.shape == (3, 256, 192)
        np.testing.assert_array_equal(target.numpy(), ref["target"][k])
        np.testing.assert_array_equal(weight.numpy(), ref["target_weight"][k])
        np.testing.assert_array_equal(meta["center"], ref["center"][k])
        assert meta["area"] == pytest.approx(np.prod(ref["scale"][k] * 200.0), rel=1e-6)


def test_test_mode_crops_equal_reference_crops(coco_mini, vectors_dir):
    """The network input before normalisation is the reference's warpAffine crop (RGB order)."""
    ann, img_root = coco_mini
    aff, boxes = np.load(vectors_dir / "affine.npz"), np.load(vectors_dir / "boxes.npz")
    crops = aff["crops"] if cv2.__version__.startswith("5.") else aff["crops_opencv4"]
    if not cv2.__version__.startswith(("4.", "5.")):
        pytest.skip(f"reference crops exist for OpenCV 4 and 5, not {cv2.__version__}")
    ds = dataset(ann, img_root, data_cfg(ann, img_root), train=False)
    checked = 0
    for k in range(len(crops)):
        if aff["rot"][k] != 0:
            continue
        image, *_ = ds[int(boxes["db_index"][aff["box_index"][k]])]
        np.testing.assert_array_equal(image.numpy().transpose(1, 2, 0), crops[k][..., ::-1])
        checked += 1
    assert checked >= 2


def test_unbiased_mode_reproduces_darkpose_targets(coco_mini, vectors_dir):
    ann, img_root = coco_mini
    ref = np.load(vectors_dir / "targets.npz")
    ds = dataset(ann, img_root, data_cfg(ann, img_root, unbiased=True), train=False)
    for k, db_index in enumerate(ref["db_index"][:10]):
        _, target, weight, meta = ds[int(db_index)]
        np.testing.assert_array_equal(meta["center"], ref["dark_center"][k])
        np.testing.assert_allclose(target.numpy(), ref["dark_target"][k], atol=2e-6)
        np.testing.assert_array_equal(weight.numpy(), ref["dark_target_weight"][k])


def marker_dataset(tmp_path):
    """One grey image with a person whose 17 joints are distinctly coloured squares."""
    rng = np.random.default_rng(0)
    colours = rng.permutation(np.array([[r, g, b] for r in (40, 130, 220) for g in (40, 130, 220)
                                        for b in (40, 130, 220)]))[:17]
    image = np.full((400, 400, 3), 90, np.uint8)
    joints = np.array([[150 + 24 * (j % 5), 80 + 40 * (j // 5)] for j in range(17)], np.float64)
    for (x, y), c in zip(joints.astype(int), colours):
        image[y - 7:y + 8, x - 7:x + 8] = c[::-1]  # BGR on disk
    cv2.imwrite(str(tmp_path / "markers.png"), image)
    kps = np.concatenate([joints, np.full((17, 1), 2.0)], 1).reshape(-1).tolist()
    coco = {"images": [{"id": 1, "file_name": "markers.png", "width": 400, "height": 400}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 20000.0,
                             "bbox": [130, 60, 140, 200], "keypoints": kps, "num_keypoints": 17}],
            "categories": [{"id": 1, "name": "person"}]}
    ann = tmp_path / "markers.json"
    ann.write_text(json.dumps(coco))
    return ann, tmp_path, colours


def test_augmented_crop_and_targets_move_together(tmp_path):
    """Rotation, scale and flip: every target peak lands on its joint's marker in the crop."""
    ann, root, colours = marker_dataset(tmp_path)
    cfg = data_cfg(ann, root, augment={"rot_factor": 40, "rot_prob": 1.0, "scale_factor": 0.3,
                                       "half_body_prob": 0.0})
    ds = dataset(ann, root, cfg, train=True, seed=1)
    swap = flip_permutation()
    flips = 0
    for epoch in range(12):
        ds.set_epoch_seed([1, epoch])  # a sample's augmentation is fixed by the epoch's seed and its index
        image, target, weight, _ = ds[0]
        rgb = image.numpy().transpose(1, 2, 0).astype(np.float64)
        peaks = target.numpy().reshape(17, -1).argmax(1)
        xs, ys = (peaks % 48) * 4, (peaks // 48) * 4
        # judge joints whose Gaussian centre is on the map (peak exactly 1); a joint just off the
        # crop keeps weight 1 while its window overlaps the map, but then its argmax is on the border
        centred = target.numpy().reshape(17, -1).max(1) == 1.0
        seen = [np.abs(rgb[y, x] - colours).sum(1).argmin() if weight[j] > 0 and centred[j] else -1
                for j, (x, y) in enumerate(zip(xs, ys))]
        on_map = [j for j in range(17) if seen[j] >= 0]
        assert len(on_map) >= 12
        identity = all(seen[j] == j for j in on_map)
        flipped = all(seen[j] == swap[j] for j in on_map)
        assert identity or flipped, seen
        flips += flipped
    assert 0 < flips < 12  # both flipped and unflipped samples occurred


def test_detection_boxes_from_results_file(shared_data_dir):
    root = shared_data_dir / "mmpose_coco"
    ann, det = root / "test_coco.json", root / "test_coco_det_AP_H_56.json"
    dets = json.loads(det.read_text())
    cfg = data_cfg(ann, root, boxes="file", det_file=str(det), det_score_thresh=0.3)
    ds = dataset(ann, root, cfg, train=False, det_file=str(det))
    expected = [d for d in dets if d["category_id"] == 1 and d["score"] >= 0.3]
    assert len(ds) == len(expected) and 0 < len(ds) < len(dets)
    assert [r["score"] for r in ds.db] == pytest.approx([d["score"] for d in expected])
    x, y, w, h = expected[0]["bbox"]
    np.testing.assert_allclose(ds.db[0]["center"], [x + w / 2, y + h / 2], rtol=1e-6)
    _, _, weight, meta = ds[0]
    assert float(weight.sum()) == 0 and meta["score"] == pytest.approx(expected[0]["score"])


def test_bad_inputs_raise_clear_errors(tmp_path, coco_mini):
    ann, root, _ = marker_dataset(tmp_path)
    (tmp_path / "markers.png").write_bytes(b"\x89PNG broken")
    ds = dataset(ann, root, data_cfg(ann, root), train=False)
    image, _, weight, meta = ds[0]  # evaluation: an empty crop, left unscored and named
    assert "markers.png (image id 1) is not a readable image" in meta["bad_image"]
    assert image.sum() == 0 and weight.sum() == 0
    (tmp_path / "markers.png").unlink()
    with pytest.raises(DatasetError, match="none of the 1 images.*markers.png.*image folder"):
        dataset(ann, root, data_cfg(ann, root), train=False)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(DatasetError, match="no person instance"):
        dataset(empty, root, data_cfg(empty, root), train=False)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read COCO annotation file"):
        dataset(broken, root, data_cfg(broken, root), train=False)
