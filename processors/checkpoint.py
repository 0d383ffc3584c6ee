"""Checkpoints written atomically: a temporary file in the same folder, fsync, then rename.

An interrupted write therefore leaves the previous ``last.pth`` intact, never half a file; a failed write
(disk full) stops with ``CheckpointError`` and the previous file intact; the temporary files a ``kill -9``
leaves behind are removed by ``remove_stale_temporaries`` at the next start. Files get the permissions of
the umask, as any other file the user creates.
"""
import glob
import json
import os
import tempfile

import torch

TEMP_PREFIX = ".tmp_"
RESUME_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "best_ap", "history", "config")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not hold what resuming needs."""


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file beside ``path``, then move it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; teammates should read results
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        previous = "the previous file is intact" if os.path.exists(path) else "no previous file"
        raise CheckpointError(f"could not write {path}: {e.strerror or e} ({previous}); free disk space or "
                              f"check the folder's permissions, then resume") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path):
    if os.path.exists(path):
        os.remove(path)


def remove_stale_temporaries(folder):
    """Delete the temporary files of writes that were killed (``kill -9``) in ``folder``; returns their names."""
    stale = sorted(glob.glob(os.path.join(glob.escape(folder), TEMP_PREFIX + "*")))
    for path in stale:
        _remove(path)
    return [os.path.basename(p) for p in stale]


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
        raise CheckpointError(f"cannot read checkpoint '{path}': {e}. If it is damaged, delete it "
                              f"(and set resume: false) to start again.") from None


def load_resume_checkpoint(path, model_cfg):
    """``last.pth`` for ``resume: true``: readable, complete, and of the model ``model_cfg`` (the YAML ``model``
    section as a dict) describes; otherwise ``CheckpointError`` saying what differs."""
    ckpt = load_checkpoint(path)
    missing = [k for k in RESUME_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} cannot be resumed: it lacks {', '.join(missing)} (is it a best.pth or a "
                              f"bare state dict? use it as val.weight_path or model.init_weights instead)")
    theirs = ckpt["config"].get("model", {})
    differs = [f"{k}: {theirs.get(k)!r} in the checkpoint, {v!r} in the YAML" for k, v in model_cfg.items()
               if theirs.get(k) != v]
    if differs:
        raise CheckpointError(f"{path} holds another model ({'; '.join(differs[:3])}); resume needs the same "
                              f"model section, or set resume: false to start a new run")
    return ckpt


def stored_config(path):
    """The configuration dict a TopPose checkpoint was trained with, or None (a bare or foreign state dict)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable here: the weight loading that follows names the problem
        return None
    return obj.get("config") if isinstance(obj, dict) and isinstance(obj.get("config"), dict) else None
