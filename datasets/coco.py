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
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from .coco_meta import flip_permutation
from .image_io import ImageError, decode_image, jpeg_header, read_image_bytes
from .keypoints import COCO_KEYPOINTS
from .preprocess import Preprocess
from .transforms import (affine_transform, clean_bbox, half_body_box, perspective_points, random_perspective,
                         warp_footprint, warp_rgb)

class DatasetError(RuntimeError):
    """The annotation file, an image or a detection file cannot be used."""


def load_coco(ann_file):
    """pycocotools COCO for ``ann_file``, quietly, with a clear error for unreadable files."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(ann_file)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise DatasetError(f"cannot read COCO annotation file '{ann_file}': {e}") from None
    coco.ann_file = ann_file
    return coco


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
                raise DatasetError(f"annotation {obj['id']} (image id {image_id}) of '{coco.ann_file}' has "
                                   f"{len(kpts)} keypoints, the configuration's keypoints.names has {num_joints}: "
                                   f"describe this dataset's keypoints in the YAML keypoints section")
            center, scale = preprocess.center_scale(box)
            db.append(_record(img_root, info, center, scale, 1.0, kpts[:, :2],
                              np.minimum(kpts[:, 2], 1.0), obj["id"]))
    return db


def _why_no_instances(coco):
    """Why a COCO file gave no training instance, and what to change."""
    anns = coco.dataset.get("annotations") or []
    if not anns:
        return "it has no annotations"
    if not any("keypoints" in a for a in anns):
        return ("its annotations have no 'keypoints': it is not a COCO keypoints file (e.g. instances_*.json "
                "instead of person_keypoints_*.json)")
    labelled = [a for a in anns if max(a.get("keypoints") or [0]) > 0 and not a.get("iscrowd")]
    if not labelled:
        return "no non-crowd annotation has a labelled keypoint"
    categories = {c["id"]: c.get("name") for c in coco.dataset.get("categories", [])}
    found = sorted({a.get("category_id") for a in labelled}, key=str)
    if 1 not in found:
        names = ", ".join(f"{c} ({categories.get(c, 'not in categories')})" for c in found)
        return (f"TopPose trains category 1 (person), and the labelled keypoints belong to category {names}: "
                f"renumber that category to 1")
    return "every person box is empty or outside its image"


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
            image_id, box, score = det["image_id"], [float(v) for v in det["bbox"]], float(det["score"])
            if len(box) != 4 or not np.isfinite(box + [score]).all():
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"detection {k} of '{det_file}' ({json.dumps(det)[:120]}) needs image_id, a bbox of "
                               f"4 finite numbers [x, y, w, h] and a score") from None
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

    Speed: the flip mirrors only what the crop reads, the warp runs on 4 channels and the HRNet targets are
    pasted: the reference's pixels and targets, bit for bit. Two ``data`` options decode less of a JPEG once
    the crop is known (``image_io.decode_image``): ``decode_rows`` (pixels unchanged) stops decoding below the
    lowest row the crop reads; ``decode_reduce`` (training only; pixels change a little, joints and targets
    do not) decodes at 1/2, 1/4 or 1/8 size where the crop samples the image sparsely (``_reduction``).
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
            if det_file:
                raise DatasetError(f"detection file '{det_file}' yields no person box for the images of "
                                   f"'{ann_file}' (none of category 1 above data.det_score_thresh)")
            raise DatasetError(f"'{ann_file}' yields no person instance: {_why_no_instances(self.coco)}")
        images = {r["image"] for r in self.db}
        missing = sorted(p for p in images if not os.path.isfile(p))
        if len(missing) == len(images):
            raise DatasetError(f"none of the {len(images)} images of '{ann_file}' is under '{img_root}' (e.g. "
                               f"{missing[0]}): check the image folder key of this split")
        # A few missing images are not fatal: named at the start (``problems``), skipped in training, their
        # instances unscored in evaluation, like any other unusable image.
        self.problems = {p: f"image {p} is missing" for p in missing}
        self.decode_rows, self.decode_reduce = data_cfg.decode_rows, data_cfg.decode_reduce  # speed options
        self.augment = SimpleNamespace(**data_cfg.augment.to_dict())  # read once, not per sample
        self.flip_perm = flip_permutation(num, keypoints.flip_pairs)
        self.set_epoch_seed(seed)

    def __len__(self):
        return len(self.db)

    def set_epoch_seed(self, seed):
        """Seed of this epoch's augmentation (an int or a list of ints): sample ``i`` draws from
        ``default_rng([*seed, i])``, so a sample is the same whatever the order, the worker or the point of
        a resumed epoch (set before each epoch: runs and resumes are reproducible)."""
        self.epoch_seed = [int(v) for v in np.atleast_1d(seed)]
        self.rng = np.random.default_rng(self.epoch_seed)

    def __getitem__(self, index):
        """``(image, target, target_weight, meta)``; ``meta["bad_image"]`` names an unusable image: in training
        the next usable instance is returned instead, in evaluation an empty crop the evaluator leaves unscored."""
        try:
            return self._sample(index)
        except ImageError as e:
            if not self.train:
                return self._unscored(index, str(e))
            for step in range(1, min(len(self.db), 100)):
                try:
                    image, target, weight, meta = self._sample((index + step) % len(self.db))
                except ImageError:
                    continue
                meta["bad_image"] = str(e)
                return image, target, weight, meta
            raise DatasetError(f"{e}, and so are the next 99 images of '{self.ann_file}': is the image folder "
                               f"damaged?") from None

    def _unscored(self, index, problem):
        rec = self.db[index]
        target, weight = self.codec.encode(np.zeros_like(rec["joints"]), np.zeros_like(rec["joints_vis"]))
        w, h = self.input_wh
        return (torch.zeros(3, h, w, dtype=torch.uint8), torch.from_numpy(target), torch.from_numpy(weight),
                {**self._meta(index, rec), "bad_image": problem})

    def _meta(self, index, rec):
        return {"index": index, "image_id": rec["image_id"], "center": rec["center"], "scale": rec["scale"],
                "score": np.float32(rec["score"]), "area": np.float32(np.prod(rec["scale"] * 200.0)),
                "bad_image": ""}

    def _sample(self, index):
        rec = self.db[index]
        data = read_image_bytes(rec["image"], rec["image_id"])
        where = f"image {rec['image']} (image id {rec['image_id']})"
        header = jpeg_header(data) if self.decode_rows or (self.train and self.decode_reduce > 0) else None
        # Without a speed option the image is decoded whole, first; with one, once the crop is known.
        image = decode_image(data, where) if header is None else None
        width = header.width if header is not None else image.shape[1]
        if self.train:
            self.rng = np.random.default_rng(self.epoch_seed + [index])
        joints, vis = rec["joints"].copy(), rec["joints_vis"].copy()
        center, scale, rot, flip = rec["center"].copy(), rec["scale"].copy(), 0.0, False
        jitter = perspective = None
        if self.train:
            joints, vis, center, scale, rot, flip = self._augment(width, joints, vis, center, scale)
            jitter, perspective = self._draw_jitter(), self._draw_perspective()
        trans = self.preprocess.transform(center, scale, rot)
        # The pixels' warp: the crop (``trans``, then ``perspective``) of the image mirrored when ``flip``.
        pixels = trans if perspective is None else perspective @ np.vstack([trans, [0.0, 0.0, 1.0]])
        reduce = self._reduction(trans) if image is None else 1
        if reduce > 1:  # reduced pixel (x, y) is centred on reduce * (x, y) + (reduce - 1) / 2; mirrored in the matrix
            half = (reduce - 1) / 2
            view = np.array([[reduce, 0.0, half], [0.0, reduce, half], [0.0, 0.0, 1.0]])
            if flip:
                view = np.array([[-1.0, 0.0, width - 1], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ view
            pixels = (np.vstack([pixels, [0.0, 0.0, 1.0]]) @ view)[:2] if perspective is None else pixels @ view
        footprint = warp_footprint(pixels, self.input_wh)
        if image is None:  # ``data.decode_rows``: down to the second bilinear tap of the lowest point read, + 1
            rows = reduce * (int(np.floor(footprint[3])) + 3) if self.decode_rows and footprint is not None else None
            image = decode_image(data, where, rows=rows, reduce=reduce, header=header)
        crop = warp_rgb(image, pixels, self.input_wh, footprint, mirror=flip and reduce == 1)
        joints, vis = self._crop_joints(joints, vis, trans, perspective)
        if jitter is not None:
            crop = color_jitter(crop, jitter)
        target, weight = self.codec.encode(joints, vis)
        return (torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))), torch.from_numpy(target),
                torch.from_numpy(weight), self._meta(index, rec))

    def _augment(self, width, joints, vis, center, scale):
        """Half-body, scale, rotation and flip as ``draw_augment`` draws them, for an image ``width`` pixels wide:
        ``(joints, vis, center, scale, rot, flip)`` in the pixels of the image, mirrored when ``flip`` (the
        caller mirrors the pixels)."""
        draw = draw_augment(self.rng, self.augment, vis.sum())
        if draw.half_body:
            half = half_body_box(joints, vis, self.preprocess.aspect_ratio, self.keypoints.upper_body_ids,
                                 draw.upper_first)
            if half is not None:
                center, scale = half
        scale = scale * draw.scale
        if draw.flip:  # fliplr_joints: x -> width - x - 1, left and right exchanged, unlabelled joints to 0
            joints[:, 0] = width - joints[:, 0] - 1  # (``joints`` is the caller's copy)
            vis = vis[self.flip_perm]
            joints = joints[self.flip_perm] * vis[:, None]
            center = center.copy()
            center[0] = width - center[0] - 1
        return joints, vis, center, scale, draw.rot, draw.flip

    def _reduction(self, trans):
        """``data.decode_reduce`` (training only): the largest of 2, 4 and 8 that leaves at least ``decode_reduce``
        decoded pixels per crop pixel, i.e. at most ``step / decode_reduce`` with ``step`` the image pixels per
        crop pixel of ``trans`` (along its denser axis); else 1."""
        if not (self.train and self.decode_reduce > 0):
            return 1
        a = np.asarray(trans, dtype=np.float64)[:, :2]
        step = 1.0 / max(np.hypot(a[0, 0], a[1, 0]), np.hypot(a[0, 1], a[1, 1]))
        return next((k for k in (8, 4, 2) if step >= k * self.decode_reduce), 1)

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

    def _crop_joints(self, joints, vis, trans, perspective):
        """``(joints, vis)`` in the crop: through the 2x3 affine ``trans``, then the 3x3 ``perspective`` of the
        crop when given. Joints the perspective leaves outside the crop (``[0, W-1] x [0, H-1]``) or behind the
        camera become invisible (visibility and coordinates 0)."""
        if perspective is None:
            visible = vis > 0
            if visible.any():
                joints[visible] = affine_transform(joints[visible], trans)
            return joints, vis
        joints, in_front = perspective_points(joints, perspective @ np.vstack([trans, [0.0, 0.0, 1.0]]))
        inside = in_front & np.all((joints >= 0) & (joints <= np.subtract(self.input_wh, 1)), axis=1)
        return np.where(inside[:, None], joints, 0.0), np.where(inside, vis, 0.0)


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
    scale = np.float32(min(max(rng.standard_normal() * sf + 1, 1 - sf), 1 + sf))  # np.clip, for one number
    rot = float(min(max(rng.standard_normal() * rf, -2 * rf), 2 * rf)) if rng.random() <= aug.rot_prob else 0.0
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
