"""COCO-format keypoints, top-down: one sample per person box, cropped and encoded by the codec.

Instances follow the reference (HRNet ``COCODataset``) rules:
- ground-truth boxes: non-crowd person annotations whose sanitised box is valid and whose
  ``area > 0``, with at least one labelled keypoint; box -> center/scale with ``pixel_std`` 200,
  ``data.aspect_ratio`` and ``data.padding`` (by default the input's aspect ratio and x1.25);
- detection boxes (evaluation with a person detector): every ``category_id`` 1 detection of an
  image of the annotation file scoring at least ``det_score_thresh``, box used raw.
"""
import contextlib
import io
import json
import os
from typing import NamedTuple

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from .keypoints import COCO_KEYPOINTS
from .preprocess import Preprocess
from .transforms import (affine_transform, clean_bbox, fliplr_joints, half_body_box, perspective_points,
                         random_perspective)

class DatasetError(RuntimeError):
    """The annotation file, an image or a detection file cannot be used."""


def load_coco(ann_file):
    """pycocotools COCO for ``ann_file``, quietly, with a clear error for unreadable files."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(ann_file)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise DatasetError(f"cannot read COCO annotation file '{ann_file}': {e}") from None


def read_image(path, image_id=None):
    """RGB uint8 image; a missing or corrupt file raises ``DatasetError`` naming it."""
    image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        what = "missing" if not os.path.exists(path) else "unreadable (corrupt or not an image)"
        raise DatasetError(f"image {path} (image id {image_id}) is {what}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def gt_instances(coco, img_root, preprocess, num_joints=COCO_KEYPOINTS.num_joints, box_rule="hrnet"):
    """Ground-truth person instances in COCO image-id order (the reference db order); ``box_rule``
    (``data.gt_box``) sanitises each box and ``preprocess`` (``Preprocess``) turns it into center / scale."""
    db = []
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        for obj in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)):
            if obj.get("category_id") != 1 or max(obj.get("keypoints") or [0]) == 0:
                continue
            box = clean_bbox(obj["bbox"], (info["width"], info["height"]), unbiased=preprocess.unbiased,
                             area=obj.get("area", 0), rule=box_rule)
            if box is None:
                continue
            kpts = np.asarray(obj["keypoints"], dtype=np.float64).reshape(-1, 3)
            if len(kpts) != num_joints:
                raise DatasetError(f"annotation {obj['id']} (image id {image_id}) has {len(kpts)} "
                                   f"keypoints, the configuration's keypoints.names has {num_joints}")
            center, scale = preprocess.center_scale(box)
            db.append(_record(img_root, info, center, scale, 1.0, kpts[:, :2],
                              np.minimum(kpts[:, 2], 1.0), obj["id"]))
    return db


def det_instances(coco, img_root, det_file, preprocess, score_thresh, num_joints=COCO_KEYPOINTS.num_joints):
    """Instances from a COCO detection results json (list of {image_id, category_id, bbox, score})."""
    try:
        with open(det_file, encoding="utf-8") as f:
            dets = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read detection file '{det_file}': {e}") from None
    if not isinstance(dets, list):
        raise DatasetError(f"detection file '{det_file}' must hold a list of detections")
    images = {i: coco.loadImgs(i)[0] for i in coco.getImgIds()}
    db, unknown = [], 0
    for k, det in enumerate(dets):
        try:
            image_id, box, score = det["image_id"], det["bbox"], float(det["score"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"detection {k} of '{det_file}' lacks image_id, bbox or score") from None
        if det.get("category_id", 1) != 1 or score < score_thresh:
            continue
        if image_id not in images:
            unknown += 1
            continue
        center, scale = preprocess.center_scale(box)
        db.append(_record(img_root, images[image_id], center, scale, score,
                          np.zeros((num_joints, 2)), np.zeros(num_joints), -1))
    if unknown:
        print(f"warning: {unknown} detections of '{det_file}' name images absent from the annotation file")
    return db


def _record(img_root, info, center, scale, score, joints, vis, ann_id):
    return {"image": os.path.join(img_root, info["file_name"]), "image_id": info["id"],
            "center": np.asarray(center, np.float32), "scale": np.asarray(scale, np.float32),
            "score": float(score), "joints": np.asarray(joints, np.float64),
            "joints_vis": np.asarray(vis, np.float64), "ann_id": ann_id}


class COCOKeypoints(Dataset):
    """Top-down COCO-format keypoint dataset.

    Each item is ``(image [3, H, W] uint8 RGB, target, target_weight, meta)``: ``target`` and
    ``target_weight`` are what ``codec.encode`` makes of the crop's joints (heatmaps and [J, 1]
    weights, or normalised coordinates and weights), ``meta`` holds ``index, image_id, center,
    scale, score, area`` (area of the padded box, ``prod(scale * 200)``, as the reference's OKS-NMS
    uses). ``self.preprocess.normalize`` turns a batch of images into network input on the training
    device.

    Training samples are augmented with ``self.rng`` (``set_epoch_seed``), in this order of draws:
    half-body, scale, rotation and flip (``draw_augment``), colour jitter, perspective (so a run with
    ``perspective_prob`` 0 draws exactly what it drew before perspective existed).

    ``data_cfg`` is the YAML ``data`` section; ``train`` switches augmentation on; ``codec`` is the
    model family's codec (``decoders.build_codec``); ``keypoints`` the ``KeypointMeta`` (flip pairs
    and upper body for augmentation; its joint count is checked against every annotation);
    ``det_file`` (evaluation only) replaces ground-truth boxes by detections.
    """

    def __init__(self, ann_file, img_root, data_cfg, train, codec, keypoints=COCO_KEYPOINTS,
                 det_file=None, seed=0):
        self.train, self.cfg, self.codec, self.keypoints = train, data_cfg, codec, keypoints
        self.preprocess = Preprocess.from_config(data_cfg)
        self.input_wh = self.preprocess.input_wh
        self.coco = load_coco(ann_file)
        self.ann_file = ann_file
        num = keypoints.num_joints
        if det_file:
            self.db = det_instances(self.coco, img_root, det_file, self.preprocess, data_cfg.det_score_thresh,
                                    num_joints=num)
        else:
            self.db = gt_instances(self.coco, img_root, self.preprocess, num_joints=num, box_rule=data_cfg.gt_box)
        if not self.db:
            source = f"detection file '{det_file}'" if det_file else f"'{ann_file}'"
            raise DatasetError(f"{source} yields no person instance (no non-crowd person with "
                               f"labelled keypoints / no detection above the threshold)")
        missing = sorted({r["image"] for r in self.db if not os.path.isfile(r["image"])})
        if missing:
            raise DatasetError(f"{len(missing)} images of '{ann_file}' are missing under '{img_root}', "
                               f"e.g. {missing[0]}")
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.db)

    def set_epoch_seed(self, seed):
        """Reseed augmentation (called each epoch so runs and resumes are reproducible)."""
        self.rng = np.random.default_rng(seed)

    def __getitem__(self, index):
        rec = self.db[index]
        image = read_image(rec["image"], rec["image_id"])
        joints, vis = rec["joints"].copy(), rec["joints_vis"].copy()
        center, scale, rot = rec["center"].copy(), rec["scale"].copy(), 0.0
        jitter = perspective = None
        if self.train:
            image, joints, vis, center, scale, rot = self._augment(image, joints, vis, center, scale)
            jitter, perspective = self._draw_jitter(), self._draw_perspective()
        crop, joints, vis = self._warp(image, joints, vis, self.preprocess.transform(center, scale, rot), perspective)
        if jitter is not None:
            crop = color_jitter(crop, jitter)
        target, weight = self.codec.encode(joints, vis)
        meta = {"index": index, "image_id": rec["image_id"], "center": rec["center"],
                "scale": rec["scale"], "score": np.float32(rec["score"]),
                "area": np.float32(np.prod(rec["scale"] * 200.0))}
        return (torch.from_numpy(crop.transpose(2, 0, 1).copy()), torch.from_numpy(target),
                torch.from_numpy(weight), meta)

    def _augment(self, image, joints, vis, center, scale):
        """Half-body, scale, rotation and flip as ``draw_augment`` draws them (in image pixels)."""
        draw = draw_augment(self.rng, self.cfg.augment, vis.sum())
        if draw.half_body:
            half = half_body_box(joints, vis, self.preprocess.aspect_ratio, self.keypoints.upper_body_ids,
                                 draw.upper_first)
            if half is not None:
                center, scale = half
        scale = scale * draw.scale
        if draw.flip:
            image = np.ascontiguousarray(image[:, ::-1])
            joints, vis2 = fliplr_joints(joints, np.repeat(vis[:, None], 2, axis=1), image.shape[1],
                                         self.keypoints.flip_pairs)
            vis = vis2[:, 0]
            center = center.copy()
            center[0] = image.shape[1] - center[0] - 1
        return image, joints, vis, center, scale, draw.rot

    def _draw_jitter(self):
        """Colour jitter factors (``color_jitter``) or None when ``data.augment.color_jitter`` is off."""
        aug = self.cfg.augment
        s = aug.color_jitter_strength
        return self.rng.uniform(1 - s, 1 + s, size=3) if aug.color_jitter else None

    def _draw_perspective(self):
        """A ``random_perspective`` matrix with probability ``data.augment.perspective_prob``, else None
        (no draw at all with probability 0, so the other draws stay those of a run without it)."""
        aug = self.cfg.augment
        if aug.perspective_prob > 0 and self.rng.random() < aug.perspective_prob:
            return random_perspective(self.rng, self.input_wh, aug.perspective_factor)
        return None

    def _warp(self, image, joints, vis, trans, perspective):
        """``(crop, joints, vis)``: the input crop by the 2x3 affine ``trans``, followed by the 3x3
        ``perspective`` of the crop when given (one bilinear warp of the composed matrix), and the joints
        mapped into it. Joints the perspective leaves outside the crop (``[0, W-1] x [0, H-1]``) or
        behind the camera become invisible (visibility and coordinates 0)."""
        if perspective is None:
            crop = cv2.warpAffine(image, trans, self.input_wh, flags=cv2.INTER_LINEAR)
            visible = vis > 0
            if visible.any():
                joints[visible] = affine_transform(joints[visible], trans)
            return crop, joints, vis
        matrix = perspective @ np.vstack([trans, [0.0, 0.0, 1.0]])
        crop = cv2.warpPerspective(image, matrix, self.input_wh, flags=cv2.INTER_LINEAR)
        joints, in_front = perspective_points(joints, matrix)
        inside = in_front & np.all((joints >= 0) & (joints <= np.subtract(self.input_wh, 1)), axis=1)
        return crop, np.where(inside[:, None], joints, 0.0), np.where(inside, vis, 0.0)


class AugmentDraw(NamedTuple):
    """The random choices of one training sample's geometric augmentation (``draw_augment``)."""
    half_body: bool  # crop to half of the body (``half_body_box``) ...
    upper_first: bool  # ... preferring its upper half
    scale: np.float32  # scale multiplier in [1 - scale_factor, 1 + scale_factor]
    rot: float  # degrees in [-2 rot_factor, 2 rot_factor]; 0 with probability 1 - rot_prob
    flip: bool  # horizontal flip


def draw_augment(rng, aug, num_visible):
    """``AugmentDraw`` from ``rng`` for a person with ``num_visible`` labelled joints; ``aug`` is the YAML
    ``data.augment`` section. The draws are the reference's, in its order: half-body (only with more than
    ``num_joints_half_body`` visible joints) and its half, scale N(1, scale_factor) clipped, rotation
    N(0, rot_factor) clipped at two rot_factor with probability ``rot_prob``, flip with probability 1/2."""
    half_body = bool(num_visible > aug.num_joints_half_body and aug.half_body_prob > 0
                     and rng.random() < aug.half_body_prob)
    upper_first = bool(half_body and rng.standard_normal() < 0.5)
    sf, rf = aug.scale_factor, aug.rot_factor
    scale = np.float32(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
    rot = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf)) if rng.random() <= aug.rot_prob else 0.0
    flip = bool(aug.flip and rng.random() <= 0.5)
    return AugmentDraw(half_body, upper_first, scale, rot, flip)


def color_jitter(crop, factors):
    """``crop`` (H, W, 3 uint8 RGB) with brightness, contrast and saturation multiplied by ``factors``."""
    b, c, sat = factors
    img = crop.astype(np.float32) * b
    img = (img - img.mean()) * c + img.mean()
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    img = (img - grey[..., None]) * sat + grey[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)
