"""Training augmentation on a synthetic person: the draws and their ranges, flip, half-body, colour
jitter, the perspective warp (pixels and joints together, visibility at the border), its config keys,
and the picture tool ``tools/show_augmentations.py``."""
import json

import cv2
import numpy as np
import pytest
import yaml

from datasets.coco import COCOKeypoints, draw_augment
from decoders import build_codec
from processors.config import ConfigError, validate

INPUT_WH = (96, 128)
OFF = {"flip": False, "scale_factor": 0.0, "rot_factor": 0.0, "half_body_prob": 0.0}
# A standing person (COCO joint order) in a 200 x 200 image; its box [60, 40, 76, 102] fills the
# 96 x 128 input about 1:1, the crop spanning x 50..146 and y 27..155 of the image.
PERSON = np.array([[98, 48], [95, 45], [101, 45], [92, 47], [104, 47], [86, 60], [110, 60], [82, 75],
                   [114, 75], [80, 88], [116, 88], [90, 95], [106, 95], [90, 115], [106, 115], [90, 138],
                   [106, 138]], np.float64)
HIP, ANKLE = 12, 16


def person_set(tmp_path, image, joints=PERSON, model="rle", **augment):
    """Training ``COCOKeypoints`` over ``image`` (H, W, 3 RGB) holding one person with ``joints``.
    ``model`` picks the codec: ``rle`` (exact joint coordinates, weight 0 outside the crop) or ``dconv``."""
    cv2.imwrite(str(tmp_path / "person.png"), np.ascontiguousarray(image[..., ::-1]))
    kps = np.concatenate([joints, np.full((len(joints), 1), 2.0)], 1).reshape(-1).tolist()
    coco = {"images": [{"id": 1, "file_name": "person.png", "width": image.shape[1], "height": image.shape[0]}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 7000.0,
                             "bbox": [60, 40, 76, 102], "keypoints": kps, "num_keypoints": len(joints)}],
            "categories": [{"id": 1, "name": "person"}]}
    ann = tmp_path / "person.json"
    ann.write_text(json.dumps(coco))
    cfg = validate({"data": {"train_ann": str(ann), "train_img_root": str(tmp_path), "val_ann": str(ann),
                             "val_img_root": str(tmp_path), "input_size": list(INPUT_WH[::-1]),
                             "heatmap_size": [32, 24], "augment": augment},
                    "model": {"type": model}})
    return COCOKeypoints(str(ann), str(tmp_path), cfg.data, train=True, codec=build_codec(cfg))


def sample(ds, seed):
    """``(crop (H, W, 3) float, joints (J, 3): x, y in input pixels and weight, target)`` for ``seed``."""
    ds.set_epoch_seed(seed)
    image, target, weight, _ = ds[0]
    joints = ds.codec.target_joints(target[None], weight[None])[0].numpy()
    return image.numpy().transpose(1, 2, 0).astype(np.float64), joints, target.numpy()


def textured_image():
    """A colourful 200 x 200 RGB image (gradients and squares), so colour changes show."""
    y, x = np.mgrid[0:200, 0:200]
    image = np.stack([x, y, 200 - (x + y) // 2], -1).astype(np.uint8)
    for k, (jx, jy) in enumerate(PERSON.astype(int)):
        image[jy - 3:jy + 4, jx - 3:jx + 4] = (40 * k % 256, 255 - 30 * k % 256, 90)
    return image


def blob_image(points, size=200, sigma=2.5):
    """A black RGB image with a bright Gaussian spot in channel ``c`` at each ``(x, y, c)`` of ``points``."""
    y, x = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size, 3))
    for px, py, c in points:
        image[..., c] += 250 * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * sigma ** 2))
    return np.round(image).astype(np.uint8)


def spot(channel):
    """Intensity-weighted centre ``(x, y)`` of the bright spot in a crop channel (None if it is gone)."""
    if channel.max() < 40:
        return None
    weights = np.where(channel > 0.2 * channel.max(), channel, 0.0)
    y, x = np.mgrid[0:channel.shape[0], 0:channel.shape[1]]
    return np.array([(x * weights).sum(), (y * weights).sum()]) / weights.sum()


def augment_cfg(**augment):
    return validate({"data": {"augment": augment}}, check_paths=False).data.augment


def test_draws_stay_in_their_ranges_and_switch_off():
    aug = augment_cfg(scale_factor=0.3, rot_factor=20.0, rot_prob=0.6, half_body_prob=0.3, flip=True)
    rng = np.random.default_rng(0)
    draws = [draw_augment(rng, aug, 17) for _ in range(3000)]
    scale = np.array([d.scale for d in draws])
    rot = np.array([d.rot for d in draws])
    assert scale.min() == np.float32(0.7) and scale.max() == np.float32(1.3)  # N(1, 0.3) clipped at 1 +- 0.3
    assert 0.28 < np.mean((scale == np.float32(0.7)) | (scale == np.float32(1.3))) < 0.36  # P(|N| > 1) = 0.317
    assert np.abs(rot).max() == 40.0 and np.mean(np.abs(rot) > 20) > 0.15  # N(0, 20) clipped at 40
    assert np.mean(rot != 0) == pytest.approx(0.6, abs=0.04)
    assert np.mean([d.flip for d in draws]) == pytest.approx(0.5, abs=0.04)
    half = [d for d in draws if d.half_body]
    assert len(half) / len(draws) == pytest.approx(0.3, abs=0.04)
    assert np.mean([d.upper_first for d in half]) == pytest.approx(0.69, abs=0.06)  # P(N < 0.5)
    # half-body needs more than num_joints_half_body (8) labelled joints
    assert not any(draw_augment(rng, aug, 8).half_body for _ in range(200))
    off = [draw_augment(rng, augment_cfg(**OFF), 17) for _ in range(500)]
    assert {(d.half_body, float(d.scale), d.rot, d.flip) for d in off} == {(False, 1.0, 0.0, False)}


def test_flip_swaps_left_and_right_joints_when_drawn(tmp_path):
    ds = person_set(tmp_path, textured_image(), **{**OFF, "flip": True})
    _, plain, _ = sample(person_set(tmp_path, textured_image(), **OFF), 0)
    flips = 0
    for seed in range(8):
        _, joints, _ = sample(ds, seed)
        if draw_augment(np.random.default_rng(seed), ds.cfg.augment, 17).flip:
            flips += 1
            # the mirror of x is W - x in the crop, and the right shoulder becomes the left one
            np.testing.assert_allclose(joints[5, 0], INPUT_WH[0] - plain[6, 0], atol=0.02)
            np.testing.assert_allclose(joints[5, 1], plain[6, 1], atol=0.02)
        else:
            np.testing.assert_allclose(joints, plain, atol=1e-4)
    assert 0 < flips < 8


def test_half_body_crops_the_chosen_half(tmp_path):
    ds = person_set(tmp_path, textured_image(), **{**OFF, "half_body_prob": 1.0})
    assert sample(person_set(tmp_path, textured_image(), **OFF), 0)[1][:, 2].all()  # whole person in the crop
    halves = set()
    for seed in range(10):
        draw = draw_augment(np.random.default_rng(seed), ds.cfg.augment, 17)
        weight = sample(ds, seed)[1][:, 2]
        assert draw.half_body
        if draw.upper_first:  # nose .. wrists in, ankles out
            assert weight[:11].all() and not weight[15:].any(), weight
        else:  # hips .. ankles in, nose and eyes out
            assert weight[11:].all() and not weight[:3].any(), weight
        halves.add(draw.upper_first)
    assert halves == {True, False}


def test_color_jitter_changes_pixels_not_targets(tmp_path):
    geometry = {"scale_factor": 0.3, "rot_factor": 30.0, "half_body_prob": 0.0}
    plain = person_set(tmp_path, textured_image(), model="dconv", **geometry)
    jitter = person_set(tmp_path, textured_image(), model="dconv", color_jitter=True,
                        color_jitter_strength=0.4, **geometry)
    for seed in range(4):
        crop, joints, target = sample(plain, seed)
        crop_j, joints_j, target_j = sample(jitter, seed)
        assert np.abs(crop - crop_j).mean() > 3
        np.testing.assert_array_equal(target, target_j)
        np.testing.assert_array_equal(joints, joints_j)
        # the same geometry: the crops still match pixel for pixel up to a colour transform
        assert np.corrcoef(crop.mean(2).ravel(), crop_j.mean(2).ravel())[0, 1] > 0.9


def test_without_perspective_the_dataset_draws_only_the_geometric_augmentation(tmp_path):
    ds = person_set(tmp_path, textured_image(), perspective_prob=0.0, perspective_factor=0.3)
    for seed in range(3):
        ds.set_epoch_seed(seed)
        ds[0]
        rng = np.random.default_rng([seed, 0])  # sample 0 of an epoch seeded with ``seed``
        draw_augment(rng, ds.cfg.augment, 17)
        assert ds.rng.random() == rng.random()


def test_perspective_moves_pixels_and_joints_together(tmp_path):
    """A bright spot on the hip lands where the targets put the hip, and away from the affine-only place."""
    image = blob_image([(*PERSON[HIP], 0)])
    ds = person_set(tmp_path, image, perspective_prob=1.0, perspective_factor=0.25, **OFF)
    affine_only = person_set(tmp_path, image, **OFF)
    moved = 0
    for seed in range(6):
        crop, joints, _ = sample(ds, seed)
        hip = joints[HIP, :2]
        assert joints[HIP, 2] == 1
        assert np.linalg.norm(spot(crop[..., 0]) - hip) < 1.5
        moved += np.linalg.norm(hip - sample(affine_only, seed)[1][HIP, :2]) > 3
    assert moved >= 3


def test_perspective_makes_joints_it_pushes_out_of_the_crop_invisible(tmp_path):
    """Heatmap codec (which keeps the weight of a joint just off the crop): a right ankle 5 px inside the
    crop's bottom-right corner has weight 0 when its spot left the crop, 1 when the spot stayed inside."""
    joints = PERSON.copy()
    joints[ANKLE] = (141, 150)
    image = blob_image([(*joints[ANKLE], 1)])
    ds = person_set(tmp_path, image, joints=joints, model="dconv", perspective_prob=1.0, perspective_factor=0.25,
                    **OFF)
    plain = person_set(tmp_path, image, joints=joints, model="dconv", **OFF)
    outcomes = set()
    for seed in range(20):
        crop, result, _ = sample(ds, seed)
        assert sample(plain, seed)[1][ANKLE, 2] == 1
        centre = spot(crop[..., 1])
        if centre is None:
            assert result[ANKLE, 2] == 0
            outcomes.add("out")
        elif np.all((centre >= 3) & (centre <= np.subtract(INPUT_WH, 4))):
            assert result[ANKLE, 2] == 1
            outcomes.add("in")
    assert outcomes == {"in", "out"}


def test_perspective_keys_are_checked():
    aug = augment_cfg(perspective_prob=0.5, perspective_factor=0.2)
    assert (aug.perspective_prob, aug.perspective_factor) == (0.5, 0.2)
    assert (augment_cfg().perspective_prob, augment_cfg().perspective_factor) == (0.0, 0.1)
    with pytest.raises(ConfigError, match=r"data\.augment\.perspective_factor"):
        augment_cfg(perspective_factor=0.6)
    with pytest.raises(ConfigError, match=r"data\.augment\.perspective_prob"):
        augment_cfg(perspective_prob=1.5)


def test_show_augmentations_writes_a_grid_of_samples_with_joints(tmp_path, capsys):
    cfg = {"data": {"use_synthetic": True, "synthetic": {"root": str(tmp_path / "synthetic"), "num_train": 4,
                                                         "num_val": 2},
                    "input_size": [96, 64], "heatmap_size": [24, 16], "augment": {"perspective_prob": 0.5}},
           "model": {"name": "resnet18"}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    from tools import show_augmentations as tool
    out = str(tmp_path / "aug.png")
    assert tool.main(["--cfg", str(tmp_path / "cfg.yaml"), "--num", "6", "--columns", "3", "--out", out]) == out
    assert capsys.readouterr().out.strip().endswith(out)
    picture = cv2.imread(out)
    assert picture.shape == (2 * 192, 3 * 128, 3)  # 2 rows of 3 crops of 64 x 96, drawn at scale 2
    assert picture.std() > 20
    # joints drawn: the left side's pure green appears in every tile (the synthetic JPEGs hardly have it)
    green = np.all(picture == (0, 220, 0), axis=2)
    assert all(green[r * 192:(r + 1) * 192, c * 128:(c + 1) * 128].any() for r in range(2) for c in range(3))

    cfg["data"]["augment"]["perspective_factor"] = 0.6
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as stop:
        tool.main(["--cfg", str(tmp_path / "bad.yaml"), "--out", out])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and "data.augment.perspective_factor" in err
