"""Both model families end to end on synthetic data: the RLE model learns, the Predictor gives the
evaluation's keypoints for the same image and box, and a custom keypoint set (the synthetic figures
without their five face joints) trains and evaluates with its own flip pairs and OKS sigmas."""
import json

import cv2
import numpy as np
import pytest
import torch
import yaml

from datasets.coco_meta import FLIP_PAIRS, KEYPOINT_NAMES, OKS_SIGMAS, SKELETON
from datasets.synthetic import make_synthetic_coco
from nets import build_model
from processors import DPProcessor
from processors.checkpoint import load_checkpoint
from processors import inference
from processors.inference import Predictor

# Measured on this split: the RLE model AP 0.087 after its 204 steps (loss -20 -> -110) on an AMD EPYC host, AP 0.050
# (AP .5 0.199, loss -21 -> -101, 264 steps) on an Intel Xeon with OpenCV 5.0 — the float kernels of the CPU and
# the OpenCV build move this early point of training —, 0.000 untrained (regression takes off later than heatmaps:
# the RLE sample needs ~500 steps, then reaches 0.31); the 12-joint heatmap model AP 0.995. Predictor vs
# evaluation: <= 7.3e-5 px (results are rounded to 1e-4).
RLE_FLOOR, RLE_FLOOR_AP50, CUSTOM_FLOOR = 0.03, 0.12, 0.8


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_coco(root, num_train=8, num_val=4, image_size=(320, 256), seed=11,
                               progress=False, workers=1)


def repeated(paths, folder, repeats, drop_joints=0):
    """The training json with every annotation ``repeats`` times (and its first ``drop_joints``
    keypoints removed): more steps per epoch on the same instances."""
    coco = json.loads(open(paths["train_ann"]).read())
    for ann in coco["annotations"]:
        kps = ann["keypoints"][3 * drop_joints:]
        ann["keypoints"], ann["num_keypoints"] = kps, int(sum(v > 0 for v in kps[2::3]))
    coco["annotations"] = [a for a in coco["annotations"] if a["num_keypoints"] > 0]
    once = folder / f"train_drop{drop_joints}.json"
    once.write_text(json.dumps(coco))
    coco["annotations"] = [dict(a, id=a["id"] + k * 100000) for k in range(repeats) for a in coco["annotations"]]
    path = folder / f"train_drop{drop_joints}_x{repeats}.json"
    path.write_text(json.dumps(coco))
    return str(path), str(once)


def write_cfg(folder, paths, name, train_ann, val_ann, **sections):
    cfg = {"model_name": name, "output_dir": str(folder / "weights"), "gpus": [], "seed": 0,
           "data": {"train_ann": train_ann, "train_img_root": paths["train_images"], "val_ann": val_ann,
                    "val_img_root": paths["train_images"], "input_size": [128, 96], "heatmap_size": [32, 24],
                    "batch_size": 8, "num_workers": 0,
                    "augment": {"flip": False, "scale_factor": 0.0, "rot_factor": 0.0, "half_body_prob": 0.0}},
           "model": {"name": "resnet18", "deconv_channels": 64},
           "optim": {"lr": 0.001, "epochs": 6, "milestones": [5]},
           "val": {"interval": 6}}
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    """One briefly trained model per family on ~17 instances (evaluated on the same instances)."""
    folder = tmp_path_factory.mktemp("families")
    train_ann, val_ann = repeated(synthetic, folder, 16)
    runs = {}
    for family, model in (("heatmap", {"type": "dconv"}), ("regression", {"type": "rle"})):
        path = write_cfg(folder, synthetic, f"overfit_{family}", train_ann, val_ann, model=model)
        proc = DPProcessor(path)
        runs[family] = {"cfg": path, "stats": proc.run(), "weights": str(folder / "weights" / f"overfit_{family}" /
                                                                         "best.pth"), "proc": proc}
    return folder, train_ann, val_ann, runs


def test_rle_model_learns(trained, synthetic):
    folder, train_ann, val_ann, runs = trained
    run = runs["regression"]
    torch.manual_seed(0)
    untrained = folder / "untrained_rle.pth"
    torch.save(build_model(run["proc"].cfg.model).state_dict(), untrained)
    before = DPProcessor(write_cfg(folder, synthetic, "untrained_rle", train_ann, val_ann, model={"type": "rle"},
                                   val={"weight_path": str(untrained)})).run()
    losses = [h["loss"] for h in run["proc"].history]
    print(f"RLE: AP {run['stats']['AP']:.3f} (untrained {before['AP']:.3f}); loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert before["AP"] < 0.02
    assert run["stats"]["AP"] > RLE_FLOOR and run["stats"]["AP .5"] > RLE_FLOOR_AP50 and losses[-1] < losses[0] - 1.0
    keys = load_checkpoint(run["weights"])["model"]
    assert any(".flow_model." in k for k in keys)  # the flow is saved with the model


@pytest.mark.parametrize("family", ["heatmap", "regression"])
def test_predictor_gives_the_evaluation_keypoints(trained, synthetic, family):
    """Evaluation on detection boxes (the GT boxes written as a detection file) through the
    processor, against the Predictor on the raw image read by OpenCV with the same box."""
    folder, train_ann, val_ann, runs = trained
    coco = json.loads(open(val_ann).read())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0 - 0.01 * k}
            for k, a in enumerate(coco["annotations"])]
    det_file = folder / "gt_as_dets.json"
    det_file.write_text(json.dumps(dets))
    model = {"type": "dconv" if family == "heatmap" else "rle"}
    path = write_cfg(folder, synthetic, f"eval_{family}", train_ann, val_ann, model=model,
                     data={"boxes": "file", "det_file": str(det_file)},
                     val={"weight_path": runs[family]["weights"], "oks_nms_thresh": 1.0})
    DPProcessor(path).run()
    results = json.loads((folder / "weights" / f"eval_{family}" / "val_results.json").read_text())
    assert len(results) == len(dets)

    predictor = Predictor.from_config(path, runs[family]["weights"])
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    worst, compared = 0.0, 0
    for image_id in sorted({d["image_id"] for d in dets}):
        image = cv2.imread(f"{synthetic['train_images']}/{files[image_id]}")
        mine = [d for d in dets if d["image_id"] == image_id]
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)]
        keypoints, scores = predictor.predict(image, boxes, [d["score"] for d in mine])
        assert keypoints.shape == (len(boxes), 17, 3)
        theirs = [r for r in results if r["image_id"] == image_id]
        for r in theirs:  # each evaluated person is one of the Predictor's rows, score included
            kps = np.reshape(r["keypoints"], (17, 3))
            diff = np.abs(keypoints - kps).max(axis=(1, 2))
            k = int(diff.argmin())
            worst, compared = max(worst, diff[k]), compared + 1
            assert scores[k] == pytest.approx(r["score"], abs=1e-5)
    print(f"{family}: {compared} people, largest difference {worst:.2e} px")
    assert compared == len(dets) and worst < 1e-3


@pytest.mark.parametrize("family", ["heatmap", "regression"])
def test_small_batches_flip_in_one_forward(trained, synthetic, family, monkeypatch):
    """Up to FUSED_FLIP_MAX boxes, the crops and their mirrors go through one forward: the keypoints of two
    forwards (in float64, where batching changes no rounding)."""
    _, _, _, runs = trained
    predictor = Predictor.from_config(runs[family]["cfg"], runs[family]["weights"])
    predictor.model.double().register_forward_pre_hook(lambda module, args: tuple(a.double() for a in args))
    batches = []
    predictor.model.register_forward_hook(lambda module, args, out: batches.append(len(args[0])))
    coco = json.loads(open(synthetic["val_ann"]).read())
    image = cv2.imread(f"{synthetic['val_images']}/{coco['images'][0]['file_name']}")
    boxes = [[20, 10, 150, 240], [60, 30, 200, 250], [5, 5, 120, 200]]
    fused = predictor(image, boxes)
    monkeypatch.setattr(inference, "FUSED_FLIP_MAX", 0)
    separate = predictor(image, boxes)
    assert batches == [6, 3, 3]
    np.testing.assert_allclose(fused, separate, rtol=0, atol=1e-9)


def test_custom_keypoint_set_trains_and_evaluates(synthetic, tmp_path):
    """12 joints (no face), re-indexed flip pairs, skeleton and sigmas from YAML, end to end."""
    train_ann, val_ann = repeated(synthetic, tmp_path, 16, drop_joints=5)
    keep = range(5, 17)
    keypoints = {"names": [KEYPOINT_NAMES[j] for j in keep],
                 "flip_pairs": [[a - 5, b - 5] for a, b in FLIP_PAIRS if a >= 5],
                 "sigmas": [float(OKS_SIGMAS[j]) for j in keep],
                 "skeleton": [[a - 5, b - 5] for a, b in SKELETON if a >= 5 and b >= 5],
                 "upper_body_ids": [0, 1, 2, 3, 4, 5]}
    path = write_cfg(tmp_path, synthetic, "body12", train_ann, val_ann, keypoints=keypoints,
                     data={"augment": {"flip": True, "scale_factor": 0.0, "rot_factor": 0.0,
                                       "half_body_prob": 0.0}})
    proc = DPProcessor(path)
    stats = proc.run()
    print(f"12 joints: AP {stats['AP']:.3f} AP50 {stats['AP .5']:.3f}")
    assert proc.cfg.model.num_joints == 12 and proc.keypoints.flip_pairs[0] == (0, 1)
    assert stats["AP"] > CUSTOM_FLOOR
    results = json.loads((tmp_path / "weights" / "body12" / "val_results.json").read_text())
    assert {len(r["keypoints"]) for r in results} == {36}
    # The same predictions scored with COCO's first 12 sigmas instead give another AP: the sigmas are used.
    from processors.coco_eval import evaluate_keypoints
    other = evaluate_keypoints(val_ann, results, sigmas=OKS_SIGMAS[:12])
    assert other["AP"] != pytest.approx(stats["AP"], abs=1e-6)


def test_predictor_input_errors_are_clear(trained):
    _, _, _, runs = trained
    predictor = Predictor.from_config(runs["heatmap"]["cfg"], runs["heatmap"]["weights"])
    image = np.zeros((64, 48, 3), np.uint8)
    assert predictor(image, np.zeros((0, 4))).shape == (0, 17, 3)
    with pytest.raises(ValueError, match="uint8 BGR"):
        predictor(image.astype(np.float32), [[0, 0, 10, 10]])
    with pytest.raises(ValueError, match=r"box 1 \(\[5.0, 5.0, 5.0, 9.0\]\)"):
        predictor(image, [[0, 0, 10, 10], [5, 5, 5, 9]])
    with pytest.raises(ValueError, match="one score per box"):
        predictor(image, [[0, 0, 10, 10]], box_scores=[0.5, 0.4])
