"""Checkpoints written atomically: a temporary file in the same folder, fsync, then rename.

An interrupted write therefore leaves the previous ``last.pth`` intact, never half a file.
"""
import json
import os
import tempfile

import torch


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then move it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_checkpoint(obj, path):
    """``torch.save(obj)`` to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save(obj, f))


def save_json(obj, path):
    """JSON to ``path`` atomically (indented, for people to read)."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode("utf-8")))


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint written by ``save_checkpoint``; a clear error if it is unreadable."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise RuntimeError(f"cannot read checkpoint '{path}': {e}. If it is damaged, delete it "
                           f"(and set resume: false) to start again.") from None


def stored_config(path):
    """The configuration dict a TopPose checkpoint was trained with, or None (a bare or foreign state dict)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable here: the weight loading that follows names the problem
        return None
    return obj.get("config") if isinstance(obj, dict) and isinstance(obj.get("config"), dict) else None
