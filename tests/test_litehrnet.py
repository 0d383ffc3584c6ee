"""Lite-HRNet wider_naive (PP-TinyPose backbone) against the converted real COCO-trained weights."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nets.litehrnet import LiteHRNetBackbone

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WEIGHTS = {
    "pp_tinypose_256x192": "pp_tinypose_256x192/tinypose_256x192_from_ir.pth",
    "pp_tinypose_128x96": "pp_tinypose_128x96/tinypose_128x96_from_ir.pth",
}
NAME = "litehrnet_wider_naive"
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def state_dicts():
    root = DATA / "pose_weights"
    if not root.is_dir():
        pytest.skip(f"PP-TinyPose weights not found at {root} (expected ../shared/data/pose_weights)")
    return {key: torch.load(root / rel, weights_only=True)["state_dict"] for key, rel in WEIGHTS.items()}


def _load(sd):
    net = LiteHRNetBackbone(NAME).eval()
    net.load_state_dict({k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")},
                        strict=True)
    return net


@pytest.mark.parametrize("key", sorted(WEIGHTS))
def test_loads_strict_and_counts(state_dicts, key):
    sd = state_dicts[key]
    net = _load(sd)
    assert {f"backbone.{k}" for k in net.state_dict()} | {"final_conv.weight", "final_conv.bias"} == set(sd)
    assert tuple(sd["final_conv.weight"].shape) == (17, net.out_channels, 1, 1)
    final_conv = torch.nn.Conv2d(net.out_channels, 17, 1)
    assert sum(p.numel() for m in (net, final_conv) for p in m.parameters()) == 1_318_625
    assert net.out_channels == 40 and net.stride == 4


@pytest.mark.parametrize("key, size", [("pp_tinypose_256x192", (256, 192)),
                                       ("pp_tinypose_128x96", (128, 96))])
def test_forward_shape(state_dicts, key, size):
    with torch.no_grad():
        out = _load(state_dicts[key])(torch.randn(2, 3, *size))
    assert out.shape == (2, 40, size[0] // 4, size[1] // 4)


def _crop(img, bbox, width=192, height=256):
    """Box -> aspect 0.75, x1.25, mapped onto [0, W-1] x [0, H-1]; returns the crop and its 2x3 matrix."""
    x, y, w, h = bbox
    center = np.array([x + w / 2, y + h / 2])
    w, h = (w, w / 0.75) if w > 0.75 * h else (h * 0.75, h)
    kx, ky = (width - 1) / (1.25 * w), (height - 1) / (1.25 * h)
    mat = np.array([[kx, 0, (width - 1) / 2 - kx * center[0]], [0, ky, (height - 1) / 2 - ky * center[1]]])
    return cv2.warpAffine(img, mat, (width, height), flags=cv2.INTER_LINEAR), mat


def test_real_person_heatmaps(state_dicts):
    """The 256x192 model + final_conv puts the heatmap peak of labelled joints near the ground truth."""
    folder = DATA / "mmpose_coco"
    coco = json.loads((folder / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    crops, joints = [], []
    for ann in coco["annotations"]:
        if not ann["num_keypoints"]:  # unlabelled people
            continue
        img = cv2.cvtColor(cv2.imread(str(folder / files[ann["image_id"]])), cv2.COLOR_BGR2RGB)
        crop, mat = _crop(img, ann["bbox"])
        crops.append((crop / 255.0 - MEAN) / STD)
        kps = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        joints.append((np.c_[kps[:, :2], np.ones(17)] @ mat.T / 4, kps[:, 2] > 0))
    sd = state_dicts["pp_tinypose_256x192"]
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        heatmaps = F.conv2d(_load(sd)(images), sd["final_conv.weight"], sd["final_conv.bias"])
    assert heatmaps.shape == (len(crops), 17, 64, 48)
    flat = heatmaps.flatten(2).argmax(-1).numpy()
    pred = np.stack([flat % 48, flat // 48], axis=-1)
    errors = np.concatenate([np.linalg.norm(p - gt, axis=-1)[vis] for p, (gt, vis) in zip(pred, joints)])
    within = (errors <= 3).mean()
    print(f"{len(crops)} people, {errors.size} labelled joints: {within:.1%} within 3 heatmap px, "
          f"mean error {errors.mean():.2f} px")
    assert errors.size >= 100
    assert within >= 0.7


def test_unknown_name():
    with pytest.raises(ValueError, match=NAME):
        LiteHRNetBackbone("litehrnet_18")
