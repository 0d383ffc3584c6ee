"""``python main.py --check``: read every image of the configured splits once, in parallel, and list the bad ones.

A 210-epoch run meets each image hundreds of times; training skips unreadable ones (named in train.log), but
finding them all before the start takes one pass.
"""
import os

from datasets.coco import load_coco
from datasets.image_io import check_images

from .config import load_config
from .loaders import with_synthetic_paths


def split_images(cfg):
    """``{split: [image paths]}`` of the training (unless evaluation-only) and validation annotation files."""
    d = cfg.data
    splits = {"val": (d.val_ann, d.val_img_root)}
    if not cfg.val.weight_path:
        splits = {"train": (d.train_ann, d.train_img_root), **splits}
    return {split: [os.path.join(root, info["file_name"]) for info in load_coco(ann).dataset.get("images", [])]
            for split, (ann, root) in splits.items()}


def check_config_images(cfg_path, opts=(), workers=None):
    """Check the images of ``cfg_path``'s splits; print the bad ones; return 0 when all are readable, else 1."""
    cfg = with_synthetic_paths(load_config(cfg_path, overrides=opts))
    workers = workers or min(32, 2 * (os.cpu_count() or 1))
    bad = {}
    for split, paths in split_images(cfg).items():
        problems = check_images(paths, workers=workers, desc=f"checking {split} images")
        print(f"{split}: {len(paths)} images, {len(problems)} unreadable")
        bad.update(problems)
    for problem in bad.values():
        print(f"  {problem}")
    if bad:
        print(f"{len(bad)} unreadable images: training skips them (named in train.log) and evaluation leaves their "
              f"people unscored; replace or remove them for the full data")
    return 1 if bad else 0
