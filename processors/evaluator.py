"""Evaluation driver: ``Predictor`` over the validation crops -> rescoring + OKS-NMS -> COCOeval.

The steps follow the reference ``validate()`` + ``COCODataset.evaluate``: forward (plus the
flipped image, fused by the codec), decode, project back to the image, rescore each box by
``box score x mean joint score above in_vis_thresh``, OKS-NMS per image with the keypoint
metadata's sigmas, write the COCO results json and run pycocotools with the same sigmas.
"""
import os

import cv2
import numpy as np
from tqdm import tqdm

from datasets.draw import draw_skeleton, tile
from datasets.keypoints import COCO_KEYPOINTS
from decoders import oks_nms, rescore

from .coco_eval import evaluate_keypoints


def predict(predictor, loader, desc="eval", progress=True):
    """Run ``predictor`` (a ``processors.inference.Predictor``) over the crops of ``loader``.

    Returns a dict of per-instance arrays: ``keypoints`` [N, J, 3] (x, y in image pixels, joint
    score), ``indices`` [N] (dataset indices), ``image_ids`` [N], ``box_scores`` [N], ``areas`` [N]
    (padded box area), ``centers``/``scales`` [N, 2], ``bad_images`` [N] (what was wrong with the image of an
    instance that cannot be scored, else '').
    """
    out = {k: [] for k in ("keypoints", "indices", "image_ids", "box_scores", "areas", "centers", "scales",
                           "bad_images")}
    for images, _, _, meta in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not progress):
        keypoints = predictor.predict_crops(images, meta["center"], meta["scale"])
        out["keypoints"].append(keypoints.cpu().numpy())
        out["indices"].append(meta["index"].numpy())
        out["image_ids"].append(meta["image_id"].numpy())
        out["box_scores"].append(meta["score"].numpy())
        out["areas"].append(meta["area"].numpy())
        out["centers"].append(meta["center"].numpy())
        out["scales"].append(meta["scale"].numpy())
        out["bad_images"].append(np.asarray(meta["bad_image"], dtype=str))
    return {k: np.concatenate(v) for k, v in out.items()}


def drop_unscored(pred):
    """``(pred without the instances whose image was unusable, list of the problems)``."""
    bad = pred["bad_images"] != ""
    return {k: v[~bad] for k, v in pred.items()}, list(dict.fromkeys(pred["bad_images"][bad].tolist()))


def nms_results(pred, in_vis_thresh=0.2, oks_thresh=0.9, sigmas=COCO_KEYPOINTS.sigmas):
    """COCO keypoint results after rescoring and per-image OKS-NMS (reference ``evaluate``)."""
    scores = rescore(pred["keypoints"][:, :, 2], pred["box_scores"], thresh=in_vis_thresh)
    rounded = np.round(pred["keypoints"].astype(np.float64), 4).reshape(len(scores), -1)
    groups = {}
    for i, image_id in enumerate(pred["image_ids"].tolist()):  # first-appearance order
        groups.setdefault(image_id, []).append(i)
    results = []
    for image_id, idx in groups.items():
        idx = np.asarray(idx)
        keep = oks_nms(pred["keypoints"][idx], scores[idx], pred["areas"][idx],
                       thresh=oks_thresh, sigmas=sigmas)
        results += [{"image_id": int(image_id), "category_id": 1, "keypoints": rounded[k].tolist(),
                     "score": float(scores[k])} for k in idx[keep]]
    return results


def evaluate_predictions(pred, coco_gt, val_cfg, keypoints=COCO_KEYPOINTS, results_path=None):
    """Rescore + NMS ``pred`` and run COCOeval against ``coco_gt`` with the sigmas of ``keypoints``;
    return (stats dict, results)."""
    results = nms_results(pred, val_cfg.in_vis_thresh, val_cfg.oks_nms_thresh, sigmas=keypoints.sigmas)
    return evaluate_keypoints(coco_gt, results, results_path=results_path, sigmas=keypoints.sigmas), results


def prediction_picture(coco_gt, img_root, results, keypoints=COCO_KEYPOINTS, max_images=8, score_thresh=0.2,
                       min_person_score=0.1):
    """Grid of the first ``max_images`` validation images with the kept predictions drawn.

    Joints scoring at most ``score_thresh`` and people scoring below ``min_person_score`` are left
    out; each box is labelled with its rescored score. Returns a BGR image.
    """
    by_image = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    tiles = []
    for image_id in list(by_image)[:max_images]:
        info = coco_gt.loadImgs(image_id)[0]
        image = cv2.imread(os.path.join(img_root, info["file_name"]))
        if image is None:
            continue
        for r in by_image[image_id]:
            if r["score"] >= min_person_score:
                kps = np.reshape(r["keypoints"], (-1, 3))
                draw_skeleton(image, kps, thresh=score_thresh, keypoints=keypoints)
                x, y = kps[:, 0].min(), kps[:, 1].min()
                cv2.putText(image, f"{r['score']:.2f}", (int(x), max(10, int(y) - 4)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(image)
    return tile(tiles, columns=4) if tiles else None
