"""Bad data never kills a run silently or loudly: damaged images are detected, named, skipped (training) or left
unscored (evaluation); bad annotation and detection files stop at the start with one clear line."""
import json
import re
import shutil

import cv2
import numpy as np
import pytest
import yaml

import main
from datasets.coco import DatasetError, load_coco
from datasets.image_io import ImageError, check_images, read_image
from processors import DPProcessor
from processors.checkpoint import load_checkpoint

from conftest import tiny_yaml


@pytest.fixture
def damaged(tmp_path, shared_data_dir):
    """Real COCO images copied and damaged: truncated to half, zero bytes, a text file named .jpg, one missing."""
    names = sorted(p.name for p in (shared_data_dir / "coco_mini" / "train2017").iterdir())[:4]
    for name in names:
        shutil.copy(shared_data_dir / "coco_mini" / "train2017" / name, tmp_path / name)
    half = tmp_path / names[0]
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])
    (tmp_path / names[1]).write_bytes(b"")
    (tmp_path / names[2]).write_text("not an image")
    return {"truncated": tmp_path / names[0], "empty": tmp_path / names[1], "text": tmp_path / names[2],
            "good": tmp_path / names[3], "missing": tmp_path / "000000999999.jpg"}


def test_damaged_images_are_detected_not_decoded_as_grey(damaged):
    # OpenCV alone decodes the truncated JPEG into a picture with a grey lower half
    assert cv2.imread(str(damaged["truncated"])) is not None
    expected = {"truncated": "is a truncated JPEG", "empty": r"is empty \(0 bytes\)",
                "text": "is not a readable image", "missing": "is missing"}
    for kind, text in expected.items():
        with pytest.raises(ImageError, match=text) as err:
            read_image(str(damaged[kind]), image_id=7)
        assert str(damaged[kind]) in str(err.value) and "image id 7" in str(err.value)
    good = read_image(str(damaged["good"]), rgb=False)
    np.testing.assert_array_equal(good, cv2.imread(str(damaged["good"])))
    problems = check_images([str(p) for p in damaged.values()], workers=4, desc="test")
    assert set(problems) == {str(damaged[k]) for k in expected}


def damage_synthetic(tmp_path, cfg_path):
    """Truncate one training image and empty one validation image of the tiny synthetic set; returns
    (train image, val image, instances of the val image)."""
    DPProcessor(cfg_path)  # nothing generated yet: the config only
    from processors.config import load_config
    from processors.loaders import with_synthetic_paths
    cfg = with_synthetic_paths(load_config(cfg_path), progress=False)
    train_coco, val_coco = load_coco(cfg.data.train_ann), load_coco(cfg.data.val_ann)
    train_img = f"{cfg.data.train_img_root}/{train_coco.dataset['images'][3]['file_name']}"
    val_info = val_coco.dataset["images"][2]
    val_img = f"{cfg.data.val_img_root}/{val_info['file_name']}"
    data = open(train_img, "rb").read()
    open(train_img, "wb").write(data[: len(data) // 3])
    open(val_img, "wb").write(b"")
    people = sum(1 for a in val_coco.dataset["annotations"]
                 if a["image_id"] == val_info["id"] and max(a["keypoints"]) > 0 and not a.get("iscrowd"))
    return train_img, val_img, people


def test_training_skips_damaged_images_and_evaluation_leaves_them_unscored(tmp_path, capsys):
    path = tiny_yaml(tmp_path, "damaged", data={"batch_size": 9})  # 45 instances: every one is visited
    train_img, val_img, people = damage_synthetic(tmp_path, path)
    assert main.main(["--check", "--cfg", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{train_img} is a truncated JPEG" in out and f"{val_img} is empty" in out

    proc = DPProcessor(path)
    stats = proc.run()
    log = (tmp_path / "weights" / "damaged" / "train.log").read_text()
    assert f"skipped: image {train_img}" in log and "truncated JPEG" in log
    assert "epoch 1/1: loss" in log and "1 unreadable images skipped" in log
    assert f"{people} instances not scored, their images unusable: image {val_img}" in log
    assert proc.unscored == people > 0 and 0 <= stats["AP"] <= 1
    assert load_checkpoint(tmp_path / "weights" / "damaged" / "last.pth")["epoch"] == 1


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


def coco_file(tmp_path, name, **changes):
    person = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 4000.0, "bbox": [10, 10, 40, 100],
              "keypoints": [20, 20, 2] * 17, "num_keypoints": 17}
    person.update(changes.pop("annotation", {}))
    if changes.pop("drop", None):  # an instances_*.json: boxes without keypoints
        del person["keypoints"], person["num_keypoints"]
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 128}],
            "annotations": [person],
            "categories": [{"id": 1, "name": "person"}]}
    coco.update(changes)
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((128, 64, 3), 90, np.uint8))
    return write_json(tmp_path / name, coco)


@pytest.mark.parametrize("name, changes, message", [
    ("instances.json", {"drop": True}, "not a COCO keypoints file"),
    ("dogs.json", {"annotation": {"category_id": 18}, "categories": [{"id": 18, "name": "dog"}]},
     "category 18 .dog.: renumber that category to 1"),
    ("twelve.json", {"annotation": {"keypoints": [20, 20, 2] * 12}},
     "annotation 1 .image id 1. of '.*twelve.json' has 12 keypoints.*keypoints section"),
    ("empty.json", {"annotations": []}, "it has no annotations"),
])
def test_annotation_files_that_cannot_train_say_why_at_the_start(tmp_path, name, changes, message, capsys):
    ann = coco_file(tmp_path, name, **dict(changes))
    path = tiny_yaml(tmp_path, "ann", data={"use_synthetic": False, "train_ann": str(ann), "val_ann": str(ann),
                                            "train_img_root": str(tmp_path), "val_img_root": str(tmp_path)})
    assert main.main(["--cfg", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    log = (tmp_path / "weights" / "ann" / "train.log").read_text()
    assert "Traceback" in log and "DatasetError" in log  # the details are kept in the run's log


def test_malformed_detection_entries_are_named(tmp_path):
    ann = coco_file(tmp_path, "people.json")
    dets = write_json(tmp_path / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40],
                                                "score": 0.9},
                                               {"image_id": 1, "category_id": 1, "bbox": [1, 2, "x", 4],
                                                "score": 0.8}])
    path = tiny_yaml(tmp_path, "dets", data={"use_synthetic": False, "train_ann": str(ann), "val_ann": str(ann),
                                             "train_img_root": str(tmp_path), "val_img_root": str(tmp_path),
                                             "boxes": "file", "det_file": str(dets)})
    with pytest.raises(DatasetError, match=r"detection 1 of '.*dets.json' \(\{.*\"x\".*\) needs image_id, a bbox "
                                           r"of 4 finite numbers"):
        DPProcessor(path).run()
    raw = yaml.safe_load(path.read_text())
    assert raw["data"]["boxes"] == "file"


@pytest.mark.parametrize("sections, message", [
    ({"data": {"boxes": "detector"}, "detector": {"weights": "missing/no_such_detector.pt"}},
     "error: detector weights 'missing/no_such_detector.pt' not found"),
    ({"model": {"name": "resnet18", "deconv_channels": 16, "pretrained": "imagenet"}},
     "error: ImageNet weights for resnet18 are not cached and TOPPOSE_OFFLINE=1 forbids downloading"),
    ({"val": {"weight_path": "GARBAGE"}}, "error: cannot read weights file"),
])
def test_expected_failures_end_with_one_line_and_details_in_the_log(tmp_path, monkeypatch, capsys, sections, message):
    monkeypatch.setenv("TOPPOSE_OFFLINE", "1")
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))  # nothing cached
    if sections.get("val"):
        (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
        sections = {"val": {"weight_path": str(tmp_path / "garbage.pth")}}
    path = tiny_yaml(tmp_path, "fails", **sections)
    assert main.main(["--cfg", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(message) and err.endswith("(details in the run's train.log)"), err
    assert "Traceback" in (tmp_path / "weights" / "fails" / "train.log").read_text()
