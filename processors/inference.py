"""``Predictor``: the one inference path, from person boxes on an image to keypoints in the image.

crop (box -> center/scale -> affine warp, as ``data.*`` says) -> normalise -> forward [+ mirrored forward ->
``codec.fuse_flip``] -> ``codec.decode`` -> back-projection to image pixels. Evaluation, the video
demo and users' scripts all go through it, so they give the same keypoints for the same box::

    import cv2
    from processors.inference import Predictor
    predictor = Predictor.from_config("configs/sample.yaml", "weights/sample_resnet18_dconv/best.pth")
    image = cv2.imread("people.jpg")                                  # uint8 BGR, as OpenCV reads it
    keypoints = predictor(image, [[40, 30, 200, 380]])                # [N, J, 3]: x, y, score
"""
import numpy as np
import torch

from datasets.keypoints import KeypointMeta
from datasets.preprocess import Preprocess
from decoders import build_codec, rescore, to_image_coords
from nets import build_model, load_pose_weights

from .config import Config, ConfigError, load_config


# Flip test on at most this many crops: one forward of the crops with their mirrors (1.2-1.4x faster than two
# forwards at batch 1 on a 2-core CPU, ResNet-50 and Lite-HRNet); larger batches run two forwards (on the CPU one
# forward of twice the batch was 10-15 % slower for ResNet-50 at 8 and 32).
FUSED_FLIP_MAX = 4


def split_batch(outputs, n):
    """``(outputs[:n], outputs[n:])`` of a model output: a tensor, or a dict of tensors (RLE)."""
    if isinstance(outputs, dict):
        return {k: v[:n] for k, v in outputs.items()}, {k: v[n:] for k, v in outputs.items()}
    return outputs[:n], outputs[n:]


def decode_to_image(codec, outputs, centers, scales, unbiased=False):
    """Decode a batch of model outputs and project it into the image: [B, J, 3] (x, y, score) torch.

    ``centers`` / ``scales`` [B, 2] are the crops' boxes (as ``box_to_center_scale`` gives them);
    ``unbiased`` selects DarkPose's back-projection (``data.unbiased``).
    """
    coords, scores = codec.decode(outputs)
    coords = to_image_coords(coords, torch.as_tensor(centers).to(coords.device),
                             torch.as_tensor(scales).to(coords.device), codec.grid_wh, unbiased=unbiased)
    return torch.cat([coords, scores.to(coords)], dim=2)


class Predictor:
    """Keypoints of the people in given boxes, for any TopPose model.

    ``model`` (in eval mode while predicting), ``codec`` (``decoders.build_codec``), ``keypoints``
    (``KeypointMeta``), ``preprocess`` (``datasets.preprocess.Preprocess``: box, crop and normalisation
    of the model); ``unbiased`` = DarkPose's back-projection; ``flip_test`` averages with the mirrored crop's output;
    ``in_vis_thresh`` is the joint-score threshold of the person score (``val.in_vis_thresh``).
    """

    def __init__(self, model, codec, keypoints, preprocess, unbiased=False, flip_test=True, device="cpu",
                 amp=False, batch_size=64, in_vis_thresh=0.2):
        self.model, self.codec, self.keypoints = model, codec, keypoints
        self.preprocess, self.unbiased, self.flip_test = preprocess, unbiased, flip_test
        self.device = torch.device(device)
        self.amp = amp and self.device.type == "cuda"
        self.batch_size, self.in_vis_thresh = batch_size, in_vis_thresh

    @classmethod
    def from_config(cls, cfg_or_path, weights=None, device=None, batch_size=None):
        """Build the model of a YAML file (or ``Config``) and load ``weights`` (a TopPose checkpoint, a
        state dict, or a foreign checkpoint ``nets.load_pose_weights`` reads; default ``val.weight_path``).
        ``device`` defaults to the first of ``gpus`` when CUDA has it, else the CPU. The YAML's data paths
        and its initial weights (``model.pretrained`` and the like) are not needed."""
        cfg = cfg_or_path if isinstance(cfg_or_path, Config) else load_config(cfg_or_path, check_paths=False)
        weights = weights or cfg.val.weight_path
        if not weights:
            raise ConfigError(f"{cfg.source}: Predictor needs weights: pass a checkpoint path or set "
                              f"val.weight_path")
        keypoints = KeypointMeta.from_config(cfg.keypoints)
        model = build_model(cfg.model, initialise=False)
        load_pose_weights(model, weights)
        if device is None:
            device = f"cuda:{cfg.gpus[0]}" if cfg.gpus and torch.cuda.is_available() else "cpu"
        return cls(model.to(device).eval(), build_codec(cfg, keypoints), keypoints, Preprocess.from_config(cfg.data),
                   unbiased=cfg.data.unbiased, flip_test=cfg.decoder.flip_test, device=device, amp=cfg.optim.amp,
                   batch_size=batch_size or cfg.val.batch_size, in_vis_thresh=cfg.val.in_vis_thresh)

    @torch.no_grad()
    def predict_crops(self, crops, centers, scales):
        """Keypoints of a batch of crops: ``crops`` [B, 3, H, W] uint8 RGB (as the dataset yields them),
        ``centers`` / ``scales`` [B, 2] of their boxes. Returns [B, J, 3] float32 torch on the device."""
        self.model.eval()
        images = self.preprocess.normalize(crops.to(self.device, non_blocking=True))
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            if not self.flip_test:
                outputs = self.model(images)
            elif len(images) <= FUSED_FLIP_MAX:  # small batches: one forward of the crops and their mirrors
                outputs = self.model(torch.cat([images, torch.flip(images, dims=[3])]))
                outputs = self.codec.fuse_flip(*split_batch(outputs, len(images)))
            else:
                outputs = self.codec.fuse_flip(self.model(images), self.model(torch.flip(images, dims=[3])))
        return decode_to_image(self.codec, outputs, centers, scales, self.unbiased)

    def __call__(self, image_bgr, boxes_xyxy, box_scores=None):
        """Keypoints [N, J, 3] (x, y in image pixels, joint score), float32 numpy, one row per box.

        ``image_bgr``: H x W x 3 uint8 as ``cv2.imread`` / ``cv2.VideoCapture`` give it;
        ``boxes_xyxy``: N x 4 person boxes; ``box_scores``: the detector's N scores (checked;
        ``predict`` returns the person scores made from them as well).
        """
        return self.predict(image_bgr, boxes_xyxy, box_scores)[0]

    def predict(self, image_bgr, boxes_xyxy, box_scores=None):
        """``(keypoints [N, J, 3], person scores [N])``: the person score is the evaluation's rescoring,
        box score (1 if not given) x the mean of the joint scores above ``in_vis_thresh``."""
        image = np.asarray(image_bgr)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be an H x W x 3 uint8 BGR array (as cv2.imread gives), got "
                             f"{image.dtype} {image.shape}")
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4) if len(boxes_xyxy) else np.zeros((0, 4))
        bad = np.flatnonzero(~np.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
        if len(bad):
            raise ValueError(f"box {bad[0]} ({boxes[bad[0]].tolist()}) is not a box x1, y1, x2, y2 with x2 > x1 "
                             f"and y2 > y1")
        scores = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"box_scores must have one score per box ({len(boxes)}), got {len(scores)}")
        out = np.zeros((len(boxes), self.keypoints.num_joints, 3), np.float32)
        for start in range(0, len(boxes), self.batch_size):
            chunk = boxes[start:start + self.batch_size]
            boxes_cs = [self.preprocess.center_scale([x1, y1, x2 - x1, y2 - y1]) for x1, y1, x2, y2 in chunk]
            centers, scales = (np.stack(v) for v in zip(*boxes_cs))
            crops = np.stack([self.preprocess.crop(image, c, s) for c, s in boxes_cs])
            crops = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2)))
            out[start:start + len(chunk)] = self.predict_crops(crops, centers, scales).cpu().numpy()
        return out, rescore(out[:, :, 2], scores, thresh=self.in_vis_thresh)
