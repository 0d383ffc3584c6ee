"""Light models on real COCO-trained weights (``../shared/data/pose_weights``): the accuracy that an
independent implementation measured, reproduced through TopPose's own crop -> predict -> decode ->
COCOeval path; weight loading with every tensor accounted for; fine-tuning initialisation; and each new
architecture training on synthetic data."""
import cv2
import numpy as np
import pytest
import torch
import yaml

from datasets.synthetic import make_synthetic_coco
from nets import MobileNetV2Backbone, PretrainedWeightsError, build_model, load_backbone_weights, load_pose_weights
from processors import DPProcessor
from processors.config import load_config, validate
from processors.inference import Predictor

MODELS = {  # config -> weights under ../shared/data/pose_weights
    "pp_tinypose_256x192": "pp_tinypose_256x192/tinypose_256x192_from_ir.pth",
    "pp_tinypose_128x96": "pp_tinypose_128x96/tinypose_128x96_from_ir.pth",
    "mobilenetv2_050_rle_192x192": "mmpose_clean_rle_mbv2_050_192x192/rle_mbv2_050_192x192_fp32.pth",
}
# ../shared/data/README.md section 5: keypoint AP with flip test, GT boxes as annotated ("raw") or the
# AP-56 detections. TopPose measured (all within 0.001): 0.8265 0.8116 0.5821 / 0.6781 0.6546 0.4278 /
# 0.6721 0.6296 0.3854.
FIGURES = [(model, split, boxes, ap) for model, aps in (
    ("pp_tinypose_256x192", (0.827, 0.812, 0.583)),
    ("pp_tinypose_128x96", (0.678, 0.655, 0.428)),
    ("mobilenetv2_050_rle_192x192", (0.672, 0.630, 0.384)))
    for (split, boxes), ap in zip((("mmpose_coco", "gt"), ("mmpose_coco", "det"), ("coco_mini", "gt")), aps)]


@pytest.fixture(scope="module")
def pose_weights(shared_data_dir):
    root = shared_data_dir / "pose_weights"
    if not root.is_dir():
        pytest.skip(f"real pose weights not found at {root}")
    return {name: str(root / rel) for name, rel in MODELS.items()}


def config(name, **sections):
    """The shipped config ``name`` with some sections updated, validated (data paths unchecked)."""
    values = load_config(f"configs/coco/{name}.yaml", check_paths=False).to_dict()
    for section, updates in sections.items():
        values[section].update(updates)
    return validate(values, f"{name}.yaml", check_paths=False)


@pytest.mark.parametrize("model, split, boxes, expected", FIGURES)
def test_real_weights_reproduce_the_measured_ap(tmp_path, shared_data_dir, pose_weights, model, split, boxes,
                                                expected):
    if split == "mmpose_coco":
        ann, root = shared_data_dir / "mmpose_coco/test_coco.json", shared_data_dir / "mmpose_coco"
    else:
        ann, root = shared_data_dir / "coco_mini/annotations/person_keypoints_train2017.json", \
            shared_data_dir / "coco_mini/train2017"
    cfg = config(model).to_dict()
    cfg["data"].update(val_ann=str(ann), val_img_root=str(root), num_workers=0, gt_box="raw", boxes="gt" if boxes == "gt" else "file",
                       det_file=str(shared_data_dir / "mmpose_coco/test_coco_det_AP_H_56.json"))
    cfg.update(gpus=[], output_dir=str(tmp_path), model_name=model)
    cfg["val"].update(weight_path=pose_weights[model], batch_size=32)
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg))
    stats = DPProcessor(str(path)).run()
    assert abs(stats["AP"] - expected) <= 0.01, f"{model} on {split} ({boxes} boxes): AP {stats['AP']:.4f}"


@pytest.mark.parametrize("model", list(MODELS))
def test_every_tensor_of_the_real_weights_is_accounted_for(pose_weights, model):
    net = build_model(config(model).model)
    state = torch.load(pose_weights[model], map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    report = load_pose_weights(net, pose_weights[model])
    assert report == {"loaded": len(state), "dropped": 0, "missing": [], "unused": []}
    assert len(net.state_dict()) == len(state)  # the RLE flow fits TopPose's and is kept
    params = sum(p.numel() for n, p in net.named_parameters() if ".loss_module." not in n)
    assert params == {"pp_tinypose_256x192": 1318625, "pp_tinypose_128x96": 1318625,
                      "mobilenetv2_050_rle_192x192": 774788}[model]


def test_flow_of_another_shape_is_dropped_and_wrong_files_are_named(pose_weights):
    net = build_model(config("mobilenetv2_050_rle_192x192").model)
    state = torch.load(pose_weights["mobilenetv2_050_rle_192x192"], map_location="cpu", weights_only=True)
    flow = [k for k in state if ".flow_model.s.0.0." in k]
    wide = {**state, **{k: torch.zeros(128, *state[k].shape[1:]) for k in flow}}  # hidden 64 -> 128
    report = load_pose_weights(net, wide)
    assert report["dropped"] == 2 and report["loaded"] == len(state) - 2
    with pytest.raises(PretrainedWeightsError,
                       match=r"316 model tensors missing.*1610 tensors of the file unused \(e.g. backbone.stem"):
        load_pose_weights(net, pose_weights["pp_tinypose_128x96"])
    partial = {k: v for k, v in state.items() if k != "backbone.conv2.bn.weight"}
    with pytest.raises(PretrainedWeightsError, match=r"1 model tensors missing.*features\.18\.1\.weight"):
        load_pose_weights(net, partial)


def test_toppose_checkpoints_and_bare_state_dicts_load(tmp_path):
    net = build_model(config("mobilenetv2_050_rle_192x192").model)
    state = {f"module.{k}": v + 1 for k, v in net.state_dict().items()}
    torch.save({"model": state, "epoch": 3, "config": {}}, tmp_path / "ckpt.pth")
    torch.save(state, tmp_path / "bare.pth")
    for name in ("ckpt.pth", "bare.pth"):
        other = build_model(config("mobilenetv2_050_rle_192x192").model)
        load_pose_weights(other, str(tmp_path / name))
        assert all(torch.equal(v, state[f"module.{k}"]) for k, v in other.state_dict().items())

def test_inference_needs_no_initial_weights(tmp_path, monkeypatch):
    """A config with ``model.pretrained: imagenet`` predicts from its checkpoint without any download."""
    monkeypatch.setenv("TOPPOSE_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_cache"))
    cfg = config("mobilenetv2_rle_256x192")
    assert cfg.model.pretrained == "imagenet"
    with pytest.raises(PretrainedWeightsError, match="TOPPOSE_OFFLINE=1"):
        build_model(cfg.model)
    torch.save(build_model(cfg.model, initialise=False).state_dict(), tmp_path / "w.pth")
    predictor = Predictor.from_config(cfg, str(tmp_path / "w.pth"), device="cpu")
    assert predictor(np.zeros((64, 48, 3), np.uint8), [[0, 0, 40, 60]]).shape == (1, 17, 3)


def test_init_weights_fine_tunes_on_other_keypoints(pose_weights, capsys):
    names = [f"j{i}" for i in range(5)]
    cfg = config("pp_tinypose_128x96", keypoints={"names": names, "flip_pairs": [[1, 2]], "sigmas": [0.05] * 5,
                                                  "skeleton": [[0, 1]], "upper_body_ids": [0, 1, 2]},
                 model={"num_joints": 0, "init_weights": pose_weights["pp_tinypose_128x96"]})
    net = build_model(cfg.model)
    state = torch.load(pose_weights["pp_tinypose_128x96"], map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(net.backbone.stem.conv1.conv.weight, state["backbone.stem.conv1.conv.weight"])
    assert net.head.final_layer.weight.shape[0] == 5
    assert "2 left at their initialisation" in capsys.readouterr().out


def test_mobilenetv2_takes_torchvision_and_mmpose_backbone_checkpoints(tmp_path, pose_weights):
    import torchvision
    ref = torchvision.models.mobilenet_v2(weights=None)
    torch.save(ref.state_dict(), tmp_path / "imagenet.pth")    # torchvision's layout, classifier included
    backbone = MobileNetV2Backbone("mobilenetv2_100")
    assert load_backbone_weights(backbone, "mobilenetv2_100", str(tmp_path / "imagenet.pth")) == 312
    assert torch.equal(backbone.features[5].conv[1][0].weight, ref.features[5].conv[1][0].weight)
    half = MobileNetV2Backbone("mobilenetv2_050")
    load_backbone_weights(half, "mobilenetv2_050", pose_weights["mobilenetv2_050_rle_192x192"])
    state = torch.load(pose_weights["mobilenetv2_050_rle_192x192"], map_location="cpu", weights_only=True)
    assert torch.equal(half.features[17].conv[1][0].weight, state["backbone.block_6.1.dw_conv.weight"])


def test_predictor_finds_real_joints(shared_data_dir, pose_weights):
    """PP-TinyPose through ``Predictor`` on a COCO image: most labelled joints within a few pixels."""
    import json
    coco = json.loads((shared_data_dir / "mmpose_coco/test_coco.json").read_text())
    predictor = Predictor.from_config(config("pp_tinypose_256x192"), pose_weights["pp_tinypose_256x192"],
                                      device="cpu")
    errors, sizes = [], []
    for image_info in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == image_info["id"] and a["num_keypoints"] > 0]
        image = cv2.imread(str(shared_data_dir / "mmpose_coco" / image_info["file_name"]))
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        kps = predictor(image, boxes)
        for ann, pred in zip(anns, kps):
            gt = np.asarray(ann["keypoints"], float).reshape(-1, 3)
            seen = gt[:, 2] > 0
            errors += list(np.linalg.norm(pred[seen, :2] - gt[seen, :2], axis=1) / np.sqrt(ann["area"]))
    errors = np.asarray(errors)
    assert len(errors) > 100 and np.median(errors) < 0.05 and np.mean(errors < 0.1) > 0.85, np.median(errors)


@pytest.mark.parametrize("name, head", [("mobilenetv2_050", "dconv"), ("mobilenetv2_050", "rle"),
                                        ("litehrnet_wider_naive", "dconv")])
def test_new_architectures_train_on_synthetic_data(tmp_path_factory, name, head):
    """Two training iterations through DPProcessor, then its evaluation; and the loss of one batch falls."""
    root = tmp_path_factory.mktemp("syn")
    paths = make_synthetic_coco(root, num_train=8, num_val=2, image_size=(256, 192), seed=5, progress=False,
                                workers=1)
    cfg = {"model_name": f"{name}_{head}", "output_dir": str(root / "w"), "gpus": [],
           "data": {"train_ann": paths["train_ann"], "train_img_root": paths["train_images"],
                    "val_ann": paths["val_ann"], "val_img_root": paths["val_images"], "input_size": [128, 96],
                    "heatmap_size": [32, 24], "batch_size": 8, "num_workers": 0},
           "model": {"type": head, "name": name, "num_deconv": 0 if name.startswith("litehrnet") else 3,
                     "deconv_channels": 32},
           "optim": {"lr": 0.001, "epochs": 1, "milestones": []}}
    (root / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = DPProcessor(str(root / "c.yaml"))
    proc.run()
    assert len(proc.train_loader) == 2 and np.isfinite(proc.history[-1]["loss"])
    images, target, weight, _ = next(iter(proc.train_loader))
    images = proc.train_set.preprocess.normalize(images)
    net, losses = proc.model.train(), []
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(4):
        loss = net(images, target, weight)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
