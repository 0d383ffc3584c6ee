"""Shared pytest fixtures: the reference vectors and the shared data folder next to the repo."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _shared(name, what):
    path = SHARED_DIR / name
    if not path.is_dir():
        pytest.skip(f"{what} not found at {path} (expected ../shared/{name} next to the repo)")
    return path


@pytest.fixture(scope="session")
def vectors_dir():
    """``../shared/vectors`` (reference HRNet / DarkPose test vectors); skips when absent."""
    return _shared("vectors", "reference vectors")


@pytest.fixture(scope="session")
def shared_data_dir():
    """``../shared/data`` (COCO-MINI and other shared data); skips when absent."""
    return _shared("data", "shared data")
