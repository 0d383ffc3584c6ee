"""Evaluation mode ``data.boxes: detector``: the person detector over the validation images, written once as a
COCO detection results json and reused while the detector, its weights, its thresholds and the images are
unchanged (the file name carries a hash of all of them)."""
import hashlib
import json
import os

from tqdm import tqdm

from datasets.image_io import ImageError, read_image
from nets.detector import PersonDetector

from .checkpoint import save_json


def _fingerprint(det_cfg, coco, img_root, device):
    """Hash of everything the detections depend on: weights (path, size, time), settings and image list."""
    weights = det_cfg.weights
    stat = os.stat(weights) if os.path.isfile(weights) else None
    parts = {"weights": os.path.abspath(weights) if stat else weights,
             "weights_stat": [stat.st_size, int(stat.st_mtime)] if stat else None,
             "settings": [det_cfg.conf, det_cfg.iou, det_cfg.max_det, det_cfg.imgsz, device],
             "images": sorted((i["id"], os.path.join(img_root, i["file_name"])) for i in coco.dataset["images"])}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def detection_file(det_cfg, coco, img_root, out_dir, device="", log=print):
    """Path of the detector's COCO results json for the images of ``coco`` (a pycocotools COCO); runs the
    detector (``det_cfg``: the YAML ``detector`` section) only when no file for the same inputs exists."""
    device = det_cfg.device or device
    path = os.path.join(out_dir, f"detections_{_fingerprint(det_cfg, coco, img_root, device)}.json")
    if os.path.isfile(path):
        log(f"detector boxes: reusing {path} ({det_cfg.weights}, conf {det_cfg.conf})")
        return path
    detector = PersonDetector(det_cfg.weights, conf=det_cfg.conf, iou=det_cfg.iou, max_det=det_cfg.max_det,
                              imgsz=det_cfg.imgsz, device=device or None)
    results = []
    for info in tqdm(coco.dataset["images"], desc=f"detect ({det_cfg.weights})", dynamic_ncols=True):
        try:
            image = read_image(os.path.join(img_root, info["file_name"]), info["id"], rgb=False)
        except ImageError as e:
            log(f"detector boxes: no boxes for an unusable image: {e}")
            continue
        boxes, scores = detector(image)
        results += [{"image_id": info["id"], "category_id": 1, "score": round(float(s), 5),
                     "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)]}
                    for (x1, y1, x2, y2), s in zip(boxes, scores)]
    save_json(results, path)
    log(f"detector boxes: {len(results)} people in {len(coco.dataset['images'])} images by {det_cfg.weights} "
        f"(conf {det_cfg.conf}) -> {path}")
    return path
