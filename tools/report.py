"""What a benchmark ran on, and where its results go: the machine's facts, the data and the JSON file."""
import datetime
import json
import os
import platform

import cv2
import numpy as np
import torch

from datasets.synthetic import make_synthetic_coco

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine_facts():
    """CPU model, core count and library versions of this host, for benchmark JSON files."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "torch": torch.__version__, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def write_json(result, path):
    """``result`` as indented JSON at ``path`` (its folder created)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def find_data(data, quick, synthetic_root):
    """``(annotation file, image folder, description)`` of the COCO-format folder ``data`` (default
    ``../shared/data/coco_mini``: annotations/person_keypoints_train2017.json and train2017/), or else of a
    synthetic set of 640x480 images generated into ``synthetic_root`` (16 images with ``quick``, else 80)."""
    data = data or os.path.join(ROOT, "..", "shared", "data", "coco_mini")
    ann = os.path.join(data, "annotations", "person_keypoints_train2017.json")
    if os.path.isfile(ann):
        return ann, os.path.join(data, "train2017"), f"COCO images ({os.path.relpath(data, ROOT)})"
    paths = make_synthetic_coco(synthetic_root, num_train=16 if quick else 80, num_val=1, image_size=(640, 480),
                                seed=0, progress=False)
    return paths["train_ann"], paths["train_images"], "synthetic 640x480 (datasets.synthetic; no COCO found)"
