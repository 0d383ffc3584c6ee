"""Experiment configuration: every YAML key, its default and its check live here.

``load_config(path)`` reads a YAML file, fills defaults, checks every value and returns a
``Config`` (nested, attribute access: ``cfg.data.input_size``). Anything wrong — an unknown
key, a wrong type, a bad value, a missing file — raises ``ConfigError`` naming the YAML file,
the key path, its line and what was expected.

Sizes in YAML are ``[height, width]``; code that needs OpenCV order uses ``Config`` helpers
such as ``cfg.data.input_wh``.
"""
import difflib
import math
import os
import re

import yaml

from datasets import coco_meta
from datasets.keypoints import keypoint_problem
from datasets.preprocess import IMAGENET_MEAN_255, IMAGENET_STD_255, WARPS


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


class Field:
    """One YAML leaf: its kind, default and an optional extra check.

    ``kind`` is one of ``str bool int float size ints floats strs pairs path``; ``size`` is a
    ``[height, width]`` pair of positive ints, ``pairs`` a list of ``[int, int]``.
    ``check(value)`` returns an error text or None.
    """

    def __init__(self, kind, default, doc, choices=None, check=None, optional=False):
        self.kind, self.default, self.doc = kind, default, doc
        self.choices, self.check, self.optional = choices, check, optional


def _positive(v):
    return None if v > 0 else "a value > 0"


def _non_negative(v):
    return None if v >= 0 else "a value >= 0"


def _probability(v):
    return None if 0.0 <= v <= 1.0 else "a probability in [0, 1]"


def _odd_kernel(v):
    return None if v >= 3 and v % 2 == 1 else "an odd kernel size >= 3"


AUGMENT = {
    "flip": Field("bool", True, "random horizontal flip with the COCO left/right pairs"),
    "scale_factor": Field("float", 0.35, "scale jitter: scale *= clip(1 + N(0, f), 1 - f, 1 + f)",
                          check=_non_negative),
    "rot_factor": Field("float", 45.0, "rotation jitter in degrees: clip(N(0, f), -2f, 2f)",
                        check=_non_negative),
    "rot_prob": Field("float", 0.6, "probability of applying the rotation", check=_probability),
    "half_body_prob": Field("float", 0.3, "probability of the half-body crop", check=_probability),
    "num_joints_half_body": Field("int", 8, "visible joints needed before half-body applies",
                                  check=_non_negative),
    "color_jitter": Field("bool", False, "random brightness / contrast / saturation"),
    "color_jitter_strength": Field("float", 0.3, "maximum relative change of each colour factor",
                                   check=_probability),
    "perspective_prob": Field("float", 0.0, "probability of a random perspective warp of the crop (keypoints "
                                            "follow it; joints it moves out of the crop become invisible)",
                              check=_probability),
    "perspective_factor": Field("float", 0.1, "perspective: each crop corner moves by up to this fraction "
                                              "of the crop's width / height", check=lambda v: None if 0 <= v < 0.5
                                else "a value in [0, 0.5)"),
}

SYNTHETIC = {
    "root": Field("str", "data/synthetic", "cache folder for the generated dataset"),
    "num_train": Field("int", 1200, "training images", check=_positive),
    "num_val": Field("int", 150, "validation images", check=_positive),
    "image_size": Field("size", [256, 320], "[height, width] of the generated images"),
    "seed": Field("int", 0, "generation seed (same seed, same dataset)"),
}

# YAML model.type -> the family of its output, which picks the codec and the default loss.
MODEL_FAMILIES = {"dconv": "heatmap", "duc": "heatmap", "rle": "regression"}
FAMILY_LOSSES = {"heatmap": ("joints_mse",), "regression": ("rle",)}
# YAML model.type of a heatmap head -> (how many times it upsamples the backbone's features, by what), from
# the model section: heatmap stride = backbone stride / upsampling.
HEAD_UPSAMPLING = {"dconv": lambda m: (2 ** m["num_deconv"], f"{m['num_deconv']} deconv layers"),
                   "duc": lambda m: (8, "three PixelShuffle(2)")}
RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")  # the ones model.se applies to
# YAML model.name -> output stride of the backbone's feature map.
BACKBONE_STRIDES = {**{n: 32 for n in RESNET_BACKBONES + ("scnet50", "scnet101", "mobilenetv2_050",
                                                          "mobilenetv2_075", "mobilenetv2_100")},
                    "litehrnet_wider_naive": 4, "hrnet_w32": 4, "hrnet_w48": 4}
# backbones that fuse branches down to 1/32 although they output 1/4: input sides divisible by 32
MULTI_BRANCH_BACKBONES = {"litehrnet_wider_naive": "Lite-HRNet", "hrnet_w32": "HRNet", "hrnet_w48": "HRNet"}
BACKBONES = tuple(BACKBONE_STRIDES)
IMAGENET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenetv2_100")
# Keys renamed since they were published: old path -> new path (named in the unknown-key error).
RENAMED = {"decoder.shift_heatmap": "decoder.flip_shift",
           "data.use_gt_bbox": "data.boxes (gt, file or detector)"}

KEYPOINTS = {
    "names": Field("strs", list(coco_meta.KEYPOINT_NAMES), "joint names, in the order of the "
                   "annotation files' keypoints (default: COCO's 17)"),
    "flip_pairs": Field("pairs", [list(p) for p in coco_meta.FLIP_PAIRS],
                        "[left, right] joint index pairs swapped by a horizontal flip (0-based)"),
    "sigmas": Field("floats", coco_meta.OKS_SIGMAS.tolist(), "OKS sigma per joint (OKS-NMS and COCOeval)"),
    "skeleton": Field("pairs", [list(p) for p in coco_meta.SKELETON], "joint index links drawn in pictures"),
    "upper_body_ids": Field("ints", list(coco_meta.UPPER_BODY_IDS),
                            "joints of the upper body (half-body augmentation)"),
}

SCHEMA = {
    "model_name": Field("str", "toppose", "name of the run: weights/<model_name>/ holds its files",
                        check=lambda v: None if v and "/" not in v and v not in (".", "..")
                        else "a non-empty name without '/'"),
    "seed": Field("int", 0, "random seed for weights init, augmentation and shuffling"),
    "output_dir": Field("str", "weights", "folder that receives <model_name>/"),
    "resume": Field("bool", False, "continue from <output_dir>/<model_name>/last.pth"),
    "keep_archives": Field("int", 5, "previous runs kept under <model_name>/archive/ (resume: false moves the "
                                     "last run there; older ones are deleted; 0 = keep all)", check=_non_negative),
    "gpus": Field("ints", [0], "CUDA device ids; [] or no CUDA means CPU; >1 id -> DataParallel (under "
                               "torchrun each process takes the GPU of its LOCAL_RANK; [] = CPU)",
                  check=lambda v: None if all(g >= 0 for g in v) else "non-negative device ids"),
    "data": {
        "train_ann": Field("path", "", "COCO person-keypoints json of the training split"),
        "train_img_root": Field("path", "", "folder of the training images", optional=True),
        "val_ann": Field("path", "", "COCO person-keypoints json of the validation split"),
        "val_img_root": Field("path", "", "folder of the validation images", optional=True),
        "synthetic": SYNTHETIC,
        "use_synthetic": Field("bool", False, "generate data.synthetic and use it instead of the paths"),
        "input_size": Field("size", [256, 192], "network input [height, width]"),
        "heatmap_size": Field("size", [64, 48], "heatmap [height, width]"),
        "sigma": Field("float", 2.0, "Gaussian target sigma in heatmap pixels", check=_positive),
        "unbiased": Field("bool", False, "DarkPose unbiased data processing (box centre, affine, "
                                         "sub-pixel targets, back-projection) instead of HRNet's"),
        "aspect_ratio": Field("float", 0.0, "width / height the person box is widened or heightened to; "
                                            "0 = the input's", check=_non_negative),
        "padding": Field("float", 1.25, "the person box is enlarged by this factor", check=_positive),
        "warp": Field("str", "auto", "crop warp: hrnet (reference affine), dark (DarkPose's), udp (the "
                                     "box onto [0, W-1], PaddleDetection / mmpose use_udp); auto = dark "
                                     "if data.unbiased else hrnet", choices=("auto",) + WARPS),
        "mean": Field("floats", list(IMAGENET_MEAN_255), "per-channel mean subtracted from 0..255 pixels, "
                                                         "in the order of data.channel_order",
                      check=lambda v: None if len(v) == 3 else "three values"),
        "std": Field("floats", list(IMAGENET_STD_255), "per-channel divisor after the mean",
                     check=lambda v: None if len(v) == 3 and min(v) > 0 else "three values > 0"),
        "channel_order": Field("str", "rgb", "colour order the network takes", choices=("rgb", "bgr")),
        "batch_size": Field("int", 32, "training images per step, all GPUs and processes together (torchrun: "
                                       "each process takes batch_size / WORLD_SIZE)", check=_positive),
        "decode_rows": Field("bool", False, "decode a baseline JPEG only down to the lowest row the crop reads "
                                            "(libjpeg stops there): pixels unchanged, faster by the share of the "
                                            "image below the crop"),
        "decode_reduce": Field("float", 0.0, "training only: decode a JPEG at 1/2, 1/4 or 1/8 size when that still "
                                             "leaves at least this many decoded pixels per crop pixel (0 = off; 1 "
                                             "keeps the crop's resolution); pixels change slightly, targets do not",
                               check=_non_negative),
        "device_targets": Field("bool", False, "heatmap models: DataLoader workers pass each crop's joints on and "
                                               "the training loop draws the target heatmaps on the training "
                                               "device (GPU), the same values: 0.4 KB instead of 209 KB a sample "
                                               "(at 64x48) between processes and to the GPU"),
        "num_workers": Field("int", 4, "DataLoader worker processes (0 = main process)",
                             check=_non_negative),
        "boxes": Field("str", "gt", "person boxes of the evaluation: gt (ground truth), file (data.det_file) or "
                                    "detector (the detector section's model over the val images)",
                       choices=("gt", "file", "detector")),
        "gt_box": Field("str", "hrnet", "ground-truth COCO box [x, y, w, h] -> crop: hrnet (clipped to the "
                                        "image, x2 = x + w - 1; + 1 with data.unbiased) or raw (as annotated, "
                                        "like detection boxes)", choices=("hrnet", "raw")),
        "det_file": Field("path", "", "COCO detection results json used when data.boxes is file",
                          optional=True),
        "det_score_thresh": Field("float", 0.0, "drop detection boxes (file or detector) scoring below this",
                                  check=_probability),
        "augment": AUGMENT,
        "debug": Field("bool", False, "save pictures of training crops with targets and of "
                                      "validation predictions beside the weights"),
    },
    "keypoints": KEYPOINTS,
    "detector": {
        "weights": Field("str", "yolov8n.pt", "person detector of data.boxes: detector: a local YOLO weights file "
                                              "or a name ultralytics downloads once (AGPL-3.0)"),
        "conf": Field("float", 0.05, "detector score threshold (low: the pose rescoring and OKS-NMS sort "
                                     "the boxes)", check=_probability),
        "iou": Field("float", 0.7, "detector NMS IoU threshold", check=_probability),
        "max_det": Field("int", 100, "most person boxes per image", check=_positive),
        "imgsz": Field("int", 640, "detector input size", check=_positive),
        "device": Field("str", "", "detector device ('' = the pose model's, e.g. cpu or cuda:0)"),
    },
    "model": {
        "type": Field("str", "dconv", "head: dconv (SimpleBaseline deconvolution, heatmaps; with num_deconv 0 "
                                      "the 1x1 head of HRNet), duc (AlphaPose pixel-shuffle upsampling, "
                                      "heatmaps, stride-32 backbones) or rle (regression with residual "
                                      "log-likelihood estimation)",
                      choices=tuple(MODEL_FAMILIES)),
        "name": Field("str", "resnet50", "backbone", choices=BACKBONES),
        "num_joints": Field("int", 0, "number of keypoints; 0 = the number of keypoints.names",
                            check=_non_negative),
        "pretrained": Field("str", "", "backbone ImageNet weights: a local .pth path (HRNet: the "
                                       "classification HRNet's hrnet_w32-36af842e.pth; SE: timm's seresnet50), "
                                       "'imagenet' (torchvision download/cache: ResNets, mobilenetv2_100), or "
                                       "'' for random init"),
        "init_backbone": Field("path", "", "initialise the backbone from the backbone.* weights of a "
                                           "TopPose checkpoint (e.g. a heatmap model's best.pth)",
                               optional=True),
        "init_weights": Field("path", "", "initialise the whole model from a pose checkpoint (TopPose, "
                                          "mmpose MobileNetV2 or PP-TinyPose names) to fine-tune it; "
                                          "head tensors of another shape (other keypoints) are skipped",
                              optional=True),
        "coord_norm": Field("bool", True, "rle: divide fc_coord's output by the feature's L2 norm "
                                          "(official RLE); false = plain linear layer (mmpose)"),
        "se": Field("bool", False, "squeeze-and-excitation in every residual block (ResNet backbones: "
                                   "SE-ResNet, timm's names)"),
        "reduction": Field("int", 16, "SE channel reduction: the squeeze has channels / reduction channels "
                                      "(with model.se)", check=_positive),
        "deconv_channels": Field("int", 256, "channels of each deconv layer", check=_positive),
        "num_deconv": Field("int", 3, "number of 4x4 stride-2 deconv layers (0: only the 1x1 output "
                                      "conv, for stride-4 backbones such as HRNet and Lite-HRNet)",
                            check=_non_negative),
    },
    "loss": {
        "type": Field("str", "auto", "auto (the model family's loss), joints_mse (heatmaps) or rle "
                                     "(regression)", choices=("auto", "joints_mse", "rle")),
        "use_target_weight": Field("bool", True, "joints_mse: weight each joint by its target weight "
                                                 "(rle always does)"),
    },
    "decoder": {
        "type": Field("str", "gauss_taylor", "heatmap decoder, heatmap models only",
                      choices=("basic", "gauss_taylor")),
        "kernel": Field("int", 11, "DARK blur kernel size", check=_odd_kernel),
        "flip_test": Field("bool", True, "average with the flipped image's output"),
        "flip_shift": Field("bool", True, "shift the flipped output one pixel right: heatmaps as HRNet's "
                                          "SHIFT_HEATMAP, coordinates as RLE's flip_coord(shift=True)"),
        "coord_origin": Field("str", "center", "rle: coordinates normalised as x / W - 0.5 (center, "
                                               "official RLE) or x / W (corner, mmpose)",
                              choices=("center", "corner")),
    },
    "optim": {
        "optimizer": Field("str", "adam", "optimizer", choices=("adam", "adamw", "sgd")),
        "lr": Field("float", 1e-3, "base learning rate", check=_positive),
        "weight_decay": Field("float", 0.0, "weight decay", check=_non_negative),
        "momentum": Field("float", 0.9, "SGD momentum", check=_probability),
        "epochs": Field("int", 210, "training epochs", check=_positive),
        "milestones": Field("ints", [170, 200], "epochs at which MultiStepLR multiplies lr by gamma",
                            check=lambda v: None if list(v) == sorted(set(v)) and all(m > 0 for m in v)
                            else "strictly increasing positive epochs"),
        "gamma": Field("float", 0.1, "MultiStepLR factor", check=_positive),
        "cosine": Field("bool", False, "cosine annealing to lr * min_lr_ratio instead of milestones"),
        "min_lr_ratio": Field("float", 0.01, "final lr / base lr of the cosine schedule",
                              check=_probability),
        "warmup": Field("int", 0, "linear warm-up iterations from lr * warmup_ratio",
                        check=_non_negative),
        "warmup_ratio": Field("float", 0.001, "lr factor at the first warm-up iteration",
                              check=_probability),
        "amp": Field("bool", False, "mixed precision (torch.amp): float16 autocast + GradScaler on CUDA, "
                                    "bfloat16 autocast on the CPU; evaluation on the CPU stays float32"),
        "channels_last": Field("bool", False, "channels-last memory format for training (faster convolutions "
                                              "on recent GPUs, with amp)"),
        "compile": Field("bool", False, "torch.compile the training step's model (inductor: Triton on CUDA, a C++ "
                                        "compiler on the CPU); the first steps take longer while it compiles; "
                                        "evaluation stays eager"),
        "ema": Field("bool", False, "keep an exponential moving average of the weights for eval"),
        "ema_decay": Field("float", 0.9998, "EMA decay per step", check=_probability),
        "sync_bn": Field("bool", False, "torch.nn.SyncBatchNorm: BatchNorm statistics over all processes "
                                        "(torchrun / DDPProcessor on CUDA only)"),
        "grad_clip": Field("float", 0.0, "clip the gradient norm to this (0 = off)", check=_non_negative),
        "skip_nonfinite": Field("bool", False, "a NaN / Inf loss skips its step (counted in the log) instead of "
                                               "stopping the run; 10 in a row still stop it"),
        "checkpoint_interval": Field("int", 0, "also write last.pth every N iterations inside an epoch (0 = off); "
                                               "resume continues inside the epoch", check=_non_negative),
        "checkpoint_minutes": Field("float", 30.0, "also write last.pth when this many minutes passed since the "
                                                   "last one (0 = off)", check=_non_negative),
    },
    "val": {
        "interval": Field("int", 1, "evaluate every N epochs (and after the last)", check=_positive),
        "batch_size": Field("int", 64, "evaluation images per step", check=_positive),
        "weight_path": Field("path", "", "evaluate these weights instead of training", optional=True),
        "in_vis_thresh": Field("float", 0.2, "joint score threshold of the rescoring",
                               check=_probability),
        "oks_nms_thresh": Field("float", 0.9, "OKS-NMS threshold", check=_probability),
    },
}


class Config:
    """Nested, read-only view of a validated configuration (attribute access)."""

    def __init__(self, values, path="<dict>"):
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name):
        try:
            value = self._values[name]
        except KeyError:
            raise AttributeError(f"config has no key '{name}'") from None
        return Config(value, self._path) if isinstance(value, dict) else value

    def __setattr__(self, name, value):
        raise AttributeError("Config is read-only; edit the YAML file instead")

    def __getitem__(self, name):
        return getattr(self, name)

    def __contains__(self, name):
        return name in self._values

    @property
    def source(self):
        """Path of the YAML file this configuration came from."""
        return self._path

    def to_dict(self):
        """Deep copy as plain dicts and lists (for logs and checkpoints)."""
        def copy(v):
            if isinstance(v, dict):
                return {k: copy(x) for k, x in v.items()}
            return list(v) if isinstance(v, list) else v
        return copy(self._values)

    # OpenCV-order helpers: YAML sizes are [height, width].
    @property
    def input_wh(self):
        return (self.input_size[1], self.input_size[0])

    @property
    def heatmap_wh(self):
        return (self.heatmap_size[1], self.heatmap_size[0])


def _line_map(text):
    """Map dotted key paths to their 1-based line numbers in the YAML text."""
    lines = {}

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[path] = key_node.start_mark.line + 1
                walk(value_node, path)

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")  # the caller has already parsed ``text``
    return lines


class _Checker:
    def __init__(self, path, lines):
        self.path, self.lines = path, lines

    def fail(self, key, message):
        line = self.lines.get(key)
        where = f"line {line}, " if isinstance(line, int) else f"{line}, " if line else ""
        raise ConfigError(f"{self.path}: {where}key '{key}': {message}")

    def section(self, spec, raw, prefix):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(prefix, f"expected a mapping of keys, got {type(raw).__name__} {raw!r}")
        for key in raw:
            if key not in spec:
                close = difflib.get_close_matches(str(key), list(spec), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(spec)}"
                if _join(prefix, key) in RENAMED:
                    hint = f"; it was renamed to '{RENAMED[_join(prefix, key)]}'"
                self.fail(_join(prefix, key), "unknown key" + hint)
        out = {}
        for key, sub in spec.items():
            name = _join(prefix, key)
            if isinstance(sub, dict):
                out[key] = self.section(sub, raw.get(key), name)
            else:
                out[key] = self.leaf(sub, raw[key], name) if key in raw else _copy(sub.default)
        return out

    def leaf(self, field, value, key):
        if value is None and field.optional:
            return _copy(field.default)
        value = self.coerce(field, value, key)
        if field.choices is not None and value not in field.choices:
            self.fail(key, f"expected one of {', '.join(map(repr, field.choices))}, got {value!r}")
        if field.check is not None:
            items = value if field.kind in ("ints", "floats", "size") else [value]
            problem = field.check(value) if field.kind in ("ints", "floats") else next(
                (p for p in map(field.check, items) if p), None)
            if problem:
                self.fail(key, f"expected {problem}, got {value!r}")
        return value

    def coerce(self, field, value, key):
        kind = field.kind
        if kind in ("str", "path"):
            if not isinstance(value, str):
                self.fail(key, f"expected a string, got {type(value).__name__} {value!r}")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                self.fail(key, f"expected true or false, got {value!r}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(key, f"expected an integer, got {type(value).__name__} {value!r}")
            return value
        if kind == "float":
            value = _number_text(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(key, f"expected a number, got {type(value).__name__} {value!r}")
            if not math.isfinite(value):
                self.fail(key, f"expected a finite number, got {value!r}")
            return float(value)
        if kind == "strs":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                self.fail(key, f"expected a list of strings, got {value!r}")
            return list(value)
        if kind == "pairs":
            ok = isinstance(value, list) and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                            for x in p) for p in value)
            if not ok:
                self.fail(key, f"expected a list of [int, int] pairs, got {value!r}")
            return [list(p) for p in value]
        if kind in ("ints", "floats", "size"):
            number = float if kind == "floats" else int
            if kind == "floats" and isinstance(value, list):
                value = [_number_text(x) for x in value]
            ok_item = (lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)) \
                if kind == "floats" else (lambda x: isinstance(x, int) and not isinstance(x, bool))
            if not isinstance(value, list) or not all(ok_item(x) for x in value):
                what = "numbers" if kind == "floats" else "integers"
                self.fail(key, f"expected a list of {what}, got {value!r}")
            if kind == "size" and (len(value) != 2 or min(value) <= 0):
                self.fail(key, f"expected [height, width] as two positive integers, got {value!r}")
            return [number(x) for x in value]
        raise AssertionError(f"unknown field kind {kind}")


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number_text(value):
    """A number written as text as a float: YAML 1.1 (PyYAML) reads ``1e-3`` (an exponent without a dot) as a
    string."""
    return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) else value


def _join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def _copy(v):
    return [_copy(x) for x in v] if isinstance(v, list) else v


def _check_consistency(values, checker, check_paths=True):
    """Checks that involve several keys, and (with ``check_paths``) the files and folders named."""
    data, optim, model = values["data"], values["optim"], values["model"]
    kp = values["keypoints"]
    problem = keypoint_problem(kp["names"], kp["flip_pairs"], kp["sigmas"], kp["skeleton"],
                               kp["upper_body_ids"])
    if problem:
        checker.fail(f"keypoints.{problem[0]}", f"expected {problem[1]}")
    if model["num_joints"] == 0:
        model["num_joints"] = len(kp["names"])
    elif model["num_joints"] != len(kp["names"]):
        checker.fail("model.num_joints", f"expected the number of keypoints.names ({len(kp['names'])}) "
                                         f"or 0, got {model['num_joints']}")
    family = MODEL_FAMILIES[model["type"]]
    loss = values["loss"]
    if loss["type"] == "auto":
        loss["type"] = FAMILY_LOSSES[family][0]
    elif loss["type"] not in FAMILY_LOSSES[family]:
        checker.fail("loss.type", f"model.type {model['type']} ({family} model) trains with "
                                  f"{' or '.join(FAMILY_LOSSES[family])} (or auto), got {loss['type']!r}")
    ih, iw = data["input_size"]
    hh, hw = data["heatmap_size"]
    if family == "heatmap" and ih * hw != iw * hh:
        checker.fail("data.heatmap_size", f"expected the aspect ratio of data.input_size {[ih, iw]} "
                                          f"(e.g. {[ih // 4, iw // 4]}), got {[hh, hw]}")
    if family == "heatmap":
        _check_heatmap_stride(model, [ih, iw], [hh, hw], checker)
    if model["name"].startswith("scnet") and min(ih, iw) < 128:
        checker.fail("data.input_size", f"SCNet's self-calibration pools its last stage (1/32) by 4, so "
                                        f"both input sides must be >= 128; got {[ih, iw]}")
    if model["name"] in MULTI_BRANCH_BACKBONES and (ih % 32 or iw % 32):
        checker.fail("data.input_size", f"{MULTI_BRANCH_BACKBONES[model['name']]} fuses branches down to 1/32, "
                                        f"so both input sides must be divisible by 32; got {[ih, iw]}")
    if model["se"] and model["name"] not in RESNET_BACKBONES:
        checker.fail("model.se", f"squeeze-and-excitation is built into the ResNets ({', '.join(RESNET_BACKBONES)}), "
                                 f"not {model['name']}; set model.se to false or pick a ResNet")
    if model["se"] and model["pretrained"] == "imagenet":
        checker.fail("model.pretrained", f"torchvision has no SE-ResNet weights; give the local path of timm's "
                                         f"se{model['name']} ImageNet state dict, or '' for random init")
    if model["pretrained"] == "imagenet" and model["name"] not in IMAGENET_BACKBONES:
        checker.fail("model.pretrained", f"'imagenet' downloads torchvision's weights of "
                                         f"{', '.join(IMAGENET_BACKBONES)} only; for {model['name']} give the "
                                         f"local path of its ImageNet checkpoint")
    if data["warp"] == "auto":
        data["warp"] = "dark" if data["unbiased"] else "hrnet"
    if optim["milestones"] and not optim["cosine"] and optim["milestones"][-1] > optim["epochs"]:
        checker.fail("optim.milestones", f"milestones beyond optim.epochs ({optim['epochs']}) never "
                                         f"take effect; got {optim['milestones']}")
    if check_paths:
        _check_paths(values, checker)


def _check_heatmap_stride(model, input_size, heatmap_size, checker):
    """data.heatmap_size is what the heatmap head makes of the backbone's stride: dconv divides it by
    2 ** num_deconv, duc by 8 (and needs a stride-32 backbone: 1/4 heatmaps)."""
    (ih, iw), name = input_size, model["name"]
    backbone_stride = BACKBONE_STRIDES[name]
    if model["type"] == "duc" and backbone_stride != 32:
        checker.fail("model.name", f"the duc head upsamples by 8 to 1/4 of the input and needs a stride-32 "
                                   f"backbone; {name} outputs 1/{backbone_stride}: use model.type dconv "
                                   f"(num_deconv: 0 on a stride-4 backbone) or a stride-32 backbone")
    upsampling, by_what = HEAD_UPSAMPLING[model["type"]](model)
    stride = backbone_stride // upsampling
    if stride < 1 or ih % backbone_stride or iw % backbone_stride or heatmap_size != [ih // stride, iw // stride]:
        expected = f"; expected {[ih // stride, iw // stride]}" if stride >= 1 else ""
        checker.fail("data.heatmap_size",
                     f"the {model['type']} model on {name} (stride {backbone_stride}) outputs input_size / "
                     f"{stride if stride >= 1 else '?'} with {by_what} and needs input sides divisible by "
                     f"{backbone_stride}; got input {[ih, iw]} and heatmap {heatmap_size}{expected}")


def _legacy_model_values(raw, checker):
    """Values of the seed tool's configs that mean something else here, named before the type checks."""
    model = raw.get("model") if isinstance(raw, dict) else None
    if isinstance(model, dict) and isinstance(model.get("reduction"), bool):
        checker.fail("model.reduction", f"got {model['reduction']!r}: the seed tool switched SE on with "
                                        f"'reduction: True'; here write 'se: true' to add squeeze-and-excitation "
                                        f"and 'reduction: <int>' (default 16) for its channel reduction")


def _check_paths(values, checker):
    """Every file and folder the configuration names exists."""
    data, model = values["data"], values["model"]
    if not data["use_synthetic"]:
        splits = ("val",) if values["val"]["weight_path"] else ("train", "val")  # evaluation needs no training set
        for split in splits:
            _require_file(checker, f"data.{split}_ann", data[f"{split}_ann"])
            _require_dir(checker, f"data.{split}_img_root", data[f"{split}_img_root"])
    if data["boxes"] == "file":
        _require_file(checker, "data.det_file", data["det_file"], "a COCO detection results json "
                      "(needed because data.boxes is file)")
    if values["val"]["weight_path"]:
        _require_file(checker, "val.weight_path", values["val"]["weight_path"])
    if values["val"]["weight_path"]:
        return  # evaluation only: the model's initial weights are not used
    if model["pretrained"] not in ("", "imagenet"):
        _require_file(checker, "model.pretrained", model["pretrained"],
                      "a local weights file, 'imagenet' or ''")
    for key in ("init_backbone", "init_weights"):
        if model[key]:
            _require_file(checker, f"model.{key}", model[key])


def _require_file(checker, key, path, what="an existing file"):
    if not path or not os.path.isfile(path):
        checker.fail(key, f"expected {what}; '{path}' does not exist (relative paths are read "
                          f"from the working directory {os.getcwd()})")


def _require_dir(checker, key, path):
    if not path or not os.path.isdir(path):
        checker.fail(key, f"expected an existing folder; '{path}' does not exist (relative paths "
                          f"are read from the working directory {os.getcwd()})")


def validate(raw, source="<dict>", lines=None, check_paths=True):
    """Check a raw nested dict against the schema; return a ``Config``.

    ``check_paths=False`` skips the existence checks of data, weight and detection files (inference
    needs none of them)."""
    checker = _Checker(source, lines or {})
    _legacy_model_values(raw, checker)
    values = checker.section(SCHEMA, raw, "")
    _check_consistency(values, checker, check_paths)
    return Config(values, source)


def apply_overrides(raw, overrides, source="<dict>"):
    """Set ``key.path=value`` strings (``--opts``) into the raw YAML mapping ``raw``; values are read as YAML
    (``16``, ``5e-4``, ``true``, ``[256, 192]``). Returns the key paths set."""
    keys = []
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{source}: --opts '{item}': expected key.path=value, e.g. optim.lr=5e-4")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node, parts = raw, key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: --opts '{item}': key '{'.'.join(parts[:i + 1])}' is not a section")
            node = child
        node[parts[-1]] = value
        keys.append(key)
    return keys


def load_config(path, check_paths=True, overrides=()):
    """Read, fill in and check a YAML experiment file; return its ``Config``.

    ``overrides``: ``key.path=value`` strings applied over the file (``main.py --opts``), checked like it.
    Raises ``ConfigError`` (naming the file, key path and line, or ``--opts``) on anything wrong;
    ``check_paths=False`` as in ``validate``.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found (working directory {os.getcwd()})")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    lines = _line_map(text)
    lines.update({key: "--opts" for key in apply_overrides(raw, overrides, path)})
    return validate(raw, path, lines, check_paths)


def with_overrides(cfg, **sections):
    """Return a new Config with some values replaced, e.g. ``with_overrides(cfg, data={...})``.

    Used for derived settings (generated dataset paths); the result is validated again.
    """
    values = cfg.to_dict()
    for section, updates in sections.items():
        if isinstance(updates, dict):
            values[section].update(updates)
        else:
            values[section] = updates
    return validate(values, cfg.source)


def _markdown_default(field, path):
    value = field.default
    if path.startswith("keypoints."):
        return "COCO's"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "`''`"
    return f"`{value}`"


def markdown_table():
    """The README's YAML reference: every key with its default and meaning, from ``SCHEMA``."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]

    def walk(spec, prefix):
        for key, sub in spec.items():
            path = _join(prefix, key)
            if isinstance(sub, dict):
                walk(sub, path)
                continue
            doc = sub.doc + (f" ({' / '.join(sub.choices)})" if sub.choices and "(" not in sub.doc else "")
            rows.append(f"| `{path}` | {_markdown_default(sub, path)} | {doc} |")

    walk(SCHEMA, "")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
