"""Synthetic COCO keypoint generator: determinism, caching, COCO validity, visibility, appearance."""
import contextlib
import io
import json
import os

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datasets.coco_meta import KEYPOINT_NAMES
from datasets.synthetic import make_synthetic_coco, render_scene

SIZE = (160, 128)                # (width, height): small images keep the suite fast
# COCO's person skeleton as published in person_keypoints_*.json (1-based joint ids).
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                 [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
LEFT_LIMBS = ((5, 7), (7, 9), (11, 13), (13, 15))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    paths = make_synthetic_coco(root, num_train=40, num_val=8, image_size=(320, 256), seed=3,
                                progress=False, workers=2)
    with open(paths["train_ann"]) as f:
        return root, paths, json.load(f)


def _keypoints(coco_json):
    return np.array([a["keypoints"] for a in coco_json["annotations"]], np.float64).reshape(-1, 17, 3)


def test_same_seed_gives_identical_files_whatever_the_worker_count(tmp_path):
    a = make_synthetic_coco(tmp_path / "a", num_train=34, num_val=3, image_size=SIZE, seed=7,
                            progress=False, workers=2)
    b = make_synthetic_coco(tmp_path / "b", num_train=34, num_val=3, image_size=SIZE, seed=7,
                            progress=False, workers=1)
    for key in ("train_ann", "val_ann"):
        assert open(a[key], "rb").read() == open(b[key], "rb").read()
    for key, count in (("train_images", 34), ("val_images", 3)):
        names = sorted(os.listdir(a[key]))
        assert names == sorted(os.listdir(b[key])) and len(names) == count
        for name in names:
            assert open(os.path.join(a[key], name), "rb").read() == open(os.path.join(b[key], name), "rb").read()
    c = make_synthetic_coco(tmp_path / "c", num_train=3, num_val=1, image_size=SIZE, seed=8, progress=False)
    img_a = cv2.imread(os.path.join(a["train_images"], "000000000001.jpg"))
    img_c = cv2.imread(os.path.join(c["train_images"], "000000000001.jpg"))
    assert img_a.shape == (SIZE[1], SIZE[0], 3) and np.abs(img_a.astype(int) - img_c).mean() > 10


def test_reuses_cache_and_regenerates_on_changed_params_or_missing_files(tmp_path):
    paths = make_synthetic_coco(tmp_path, num_train=3, num_val=2, image_size=SIZE, seed=0, progress=False)
    stamp = os.stat(paths["train_ann"]).st_mtime_ns, os.stat(tmp_path / "manifest.json").st_mtime_ns
    again = make_synthetic_coco(tmp_path, num_train=3, num_val=2, image_size=SIZE, seed=0, progress=False)
    assert again == paths
    assert (os.stat(paths["train_ann"]).st_mtime_ns, os.stat(tmp_path / "manifest.json").st_mtime_ns) == stamp
    old_json = open(paths["train_ann"], "rb").read()
    make_synthetic_coco(tmp_path, num_train=4, num_val=2, image_size=SIZE, seed=1, progress=False)
    assert json.load(open(tmp_path / "manifest.json"))["num_train"] == 4
    assert len(os.listdir(paths["train_images"])) == 4 and open(paths["train_ann"], "rb").read() != old_json
    os.remove(os.path.join(paths["val_images"], "000000000002.jpg"))
    make_synthetic_coco(tmp_path, num_train=4, num_val=2, image_size=SIZE, seed=1, progress=False)
    assert os.path.isfile(os.path.join(paths["val_images"], "000000000002.jpg"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_bad_parameters_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic_coco(tmp_path, num_train=1, num_val=1, image_size=(32, 256))
    with pytest.raises(ValueError, match="num_train"):
        make_synthetic_coco(tmp_path, num_train=-1, num_val=1)


def test_json_is_valid_coco_with_right_counts(dataset):
    _, paths, _ = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(paths["train_ann"])
        coco_val = COCO(paths["val_ann"])
    assert len(coco.getImgIds()) == 40 and len(coco_val.getImgIds()) == 8
    cat = coco.loadCats(1)[0]
    assert cat["name"] == "person" and cat["keypoints"] == list(KEYPOINT_NAMES)
    assert cat["skeleton"] == COCO_SKELETON
    per_image = [len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()]
    assert min(per_image) >= 1 and max(per_image) <= 4 and len(set(per_image)) >= 3
    for img in coco.loadImgs(coco.getImgIds()):
        assert (img["width"], img["height"]) == (320, 256)
        assert cv2.imread(os.path.join(paths["train_images"], img["file_name"])).shape == (256, 320, 3)
    ids = [a["id"] for a in coco.dataset["annotations"]]
    assert len(set(ids)) == len(ids)
    for ann in coco.dataset["annotations"]:
        kps = np.array(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == (kps[:, 2] > 0).sum() >= 1
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 320 and y + h <= 256 and w > 0 and h > 0
        assert 0 < ann["area"] <= w * h


def test_keypoints_inside_image_and_bbox_and_outside_ones_are_zero(dataset):
    _, _, coco_json = dataset
    for ann in coco_json["annotations"]:
        kps = np.array(ann["keypoints"]).reshape(17, 3)
        lab = kps[:, 2] > 0
        assert set(kps[:, 2]) <= {0, 1, 2}
        assert np.all(kps[~lab, :2] == 0)
        x, y, w, h = ann["bbox"]
        assert np.all((kps[lab, 0] >= max(x, 0)) & (kps[lab, 0] <= min(x + w - 1, 319)))
        assert np.all((kps[lab, 1] >= max(y, 0)) & (kps[lab, 1] <= min(y + h - 1, 255)))
        assert np.all(np.round(kps[:, :2], 2) == kps[:, :2])


def test_visibility_mix(dataset):
    v = _keypoints(dataset[2])[..., 2]
    labelled = (v > 0).sum()
    assert (v == 2).sum() > 0.6 * v.size and (v == 0).sum() > 0
    assert 0.02 < (v == 1).sum() / labelled < 0.25


def test_ground_truth_as_prediction_scores_ap_one(dataset):
    _, paths, coco_json = dataset
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in coco_json["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(paths["train_ann"])
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[5] == pytest.approx(1.0)


def test_joints_lie_on_their_figure_and_depth_order_sets_visibility():
    for index in range(12):
        image, people = render_scene(np.random.default_rng([5, 0, index]), (320, 256))
        assert image.shape == (256, 320, 3) and 1 <= len(people) <= 4
        for k, person in enumerate(people):
            kps = person["keypoints"]
            lab = kps[:, 2] > 0
            assert lab.any()
            cols, rows = np.round(kps[lab, 0]).astype(int), np.round(kps[lab, 1]).astype(int)
            assert person["mask"][rows, cols].all(), "a labelled joint is off its figure's pixels"
            later = np.zeros_like(person["mask"])
            for other in people[k + 1:]:
                later |= other["mask"]
            covered = later[rows, cols]
            assert not covered[kps[lab, 2] == 2].any(), "a joint drawn over by a later person is marked visible"


def _hue_family(bgr):
    hue = cv2.cvtColor(np.uint8([[bgr]]), cv2.COLOR_BGR2HSV_FULL)[0, 0, 0] * 360.0 / 256.0
    return "warm" if hue <= 70 or hue >= 330 else "cool" if 165 <= hue <= 275 else "other"


def test_left_limbs_warm_right_limbs_cool_in_the_jpeg(dataset):
    _, paths, coco_json = dataset
    images = {}
    hits = {"left": [], "right": []}
    for ann in coco_json["annotations"]:
        if ann["bbox"][3] < 80:
            continue
        kps = np.array(ann["keypoints"]).reshape(17, 3)
        if ann["image_id"] not in images:
            images[ann["image_id"]] = cv2.imread(os.path.join(paths["train_images"], f"{ann['image_id']:012d}.jpg"))
        image = images[ann["image_id"]]
        for a, b in LEFT_LIMBS:
            for side, off, want in (("left", 0, "warm"), ("right", 1, "cool")):
                if kps[a + off, 2] == 2 and kps[b + off, 2] == 2:
                    x, y = np.round((kps[a + off, :2] + kps[b + off, :2]) / 2).astype(int)
                    patch = image[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(-1, 3)
                    hits[side].append(_hue_family(np.median(patch, 0)) == want)
    for side, ok in hits.items():
        assert len(ok) >= 30, f"too few {side} limbs to check"
        assert np.mean(ok) > 0.85, f"{side} limb midpoints have the wrong hue family ({np.mean(ok):.2f})"
