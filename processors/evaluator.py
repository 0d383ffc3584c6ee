"""Evaluation driver: model outputs -> image keypoints -> rescoring + OKS-NMS -> COCOeval.

The steps follow the reference ``validate()`` + ``COCODataset.evaluate``: forward (plus the
flipped image, averaged after ``flip_back`` and the optional one-pixel shift), decode, project
back to the image, rescore each box by ``box score x mean joint score above in_vis_thresh``,
OKS-NMS per image, write the COCO results json and run pycocotools.
"""
import os

import cv2
import numpy as np
import torch
from tqdm import tqdm

from datasets.coco import normalize
from datasets.coco_meta import FLIP_PAIRS, OKS_SIGMAS
from datasets.draw import draw_skeleton, tile
from decoders import decode_heatmaps, fuse_flip, oks_nms, rescore, to_image_coords

from .coco_eval import evaluate_keypoints


def heatmaps_to_keypoints(heatmaps, centers, scales, decoder_cfg, heatmap_wh, unbiased=False):
    """Decode [B, J, h, w] heatmaps and project them into the image: [B, J, 3] (x, y, score).

    ``heatmap_wh`` is (width, height); ``centers``/``scales`` [B, 2] as the dataset's meta.
    """
    coords, maxvals = decode_heatmaps(heatmaps, method=decoder_cfg.type, kernel=decoder_cfg.kernel)
    coords = to_image_coords(coords, torch.as_tensor(centers).to(coords), torch.as_tensor(scales).to(coords),
                             heatmap_wh, unbiased=unbiased)
    return torch.cat([coords, maxvals.to(coords)], dim=2)


@torch.no_grad()
def predict(model, loader, decoder_cfg, heatmap_wh, device, unbiased=False, amp=False, desc="eval"):
    """Run ``model`` over ``loader``; return per-instance arrays.

    Returns a dict: ``keypoints`` [N, J, 3] (x, y in image pixels, joint score), ``image_ids``
    [N], ``box_scores`` [N], ``areas`` [N] (padded box area), ``centers``/``scales`` [N, 2].
    """
    model.eval()
    out = {k: [] for k in ("keypoints", "image_ids", "box_scores", "areas", "centers", "scales")}
    use_amp = amp and device.type == "cuda"
    for images, _, _, meta in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        images = normalize(images.to(device, non_blocking=True))
        with torch.autocast(device_type=device.type, enabled=use_amp):
            heatmaps = model(images).float()
            if decoder_cfg.flip_test:
                flipped = model(torch.flip(images, dims=[3])).float()
                heatmaps = fuse_flip(heatmaps, flipped, FLIP_PAIRS, shift=decoder_cfg.shift_heatmap)
        keypoints = heatmaps_to_keypoints(heatmaps, meta["center"], meta["scale"], decoder_cfg,
                                          heatmap_wh, unbiased)
        out["keypoints"].append(keypoints.cpu().numpy())
        out["image_ids"].append(meta["image_id"].numpy())
        out["box_scores"].append(meta["score"].numpy())
        out["areas"].append(meta["area"].numpy())
        out["centers"].append(meta["center"].numpy())
        out["scales"].append(meta["scale"].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def nms_results(pred, in_vis_thresh=0.2, oks_thresh=0.9, sigmas=OKS_SIGMAS):
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


def evaluate_predictions(pred, coco_gt, val_cfg, results_path=None):
    """Rescore + NMS ``pred`` and run COCOeval against ``coco_gt``; return (stats dict, results)."""
    results = nms_results(pred, val_cfg.in_vis_thresh, val_cfg.oks_nms_thresh)
    return evaluate_keypoints(coco_gt, results, results_path=results_path), results


def prediction_picture(coco_gt, img_root, results, max_images=8, score_thresh=0.2, min_person_score=0.1):
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
                draw_skeleton(image, kps, thresh=score_thresh)
                x, y = kps[:, 0].min(), kps[:, 1].min()
                cv2.putText(image, f"{r['score']:.2f}", (int(x), max(10, int(y) - 4)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(image)
    return tile(tiles, columns=4) if tiles else None
