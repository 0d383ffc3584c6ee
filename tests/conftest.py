"""Shared pytest fixtures: the reference vectors and the shared data folder next to the repo."""
import os
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _shared(name, what):
    """``../shared/<name>``; absent, the test skips — or fails under CI (``TOPPOSE_REQUIRE_SHARED=1``), where
    skipping would hide most of the parity and real-data tests."""
    path = SHARED_DIR / name
    if not path.is_dir():
        message = f"{what} not found at {path} (expected ../shared/{name} next to the repo)"
        if os.environ.get("TOPPOSE_REQUIRE_SHARED") == "1":
            pytest.fail(message + "; TOPPOSE_REQUIRE_SHARED=1 requires it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def vectors_dir():
    """``../shared/vectors`` (reference HRNet / DarkPose test vectors); skips when absent."""
    return _shared("vectors", "reference vectors")


@pytest.fixture(scope="session")
def shared_data_dir():
    """``../shared/data`` (COCO-MINI and other shared data); skips when absent."""
    return _shared("data", "shared data")


def tiny_yaml(tmp_path, name="tiny", **sections):
    """Write a tiny experiment YAML (ResNet-18 at 64x32 on a 24-image synthetic set, one epoch, CPU) with
    ``sections`` merged in (``optim={"epochs": 2}``); returns its path."""
    cfg = {"model_name": name, "output_dir": str(tmp_path / "weights"), "gpus": [], "seed": 3,
           "data": {"use_synthetic": True, "num_workers": 0, "batch_size": 8,
                    "synthetic": {"root": str(tmp_path / "synthetic"), "num_train": 24, "num_val": 10,
                                  "image_size": [160, 128], "seed": 5},
                    "input_size": [64, 32], "heatmap_size": [16, 8]},
           "model": {"name": "resnet18", "deconv_channels": 16},
           "optim": {"lr": 0.002, "epochs": 1, "milestones": []},
           "val": {"batch_size": 4}}
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
