"""Picture of augmented training samples, with the joints that their targets encode.

    python tools/show_augmentations.py --cfg configs/sample.yaml --num 16 --out augmentations.png

Builds the training split of the experiment (generating the synthetic dataset first when
``data.use_synthetic``) with its ``data.augment`` settings and writes a PNG grid of ``--num`` augmented
samples (the instances in order, from the first again when there are fewer), each with the skeleton of
the joints its targets encode (``codec.target_joints``; joints of weight 0 are not drawn). ``--seed``
seeds the augmentation. Prints the path of the picture.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.coco import COCOKeypoints, DatasetError  # noqa: E402
from datasets.draw import batch_picture, write_image  # noqa: E402
from datasets.keypoints import KeypointMeta  # noqa: E402
from decoders import build_codec  # noqa: E402
from processors.config import ConfigError, load_config  # noqa: E402
from processors.loaders import with_synthetic_paths  # noqa: E402


def augmentation_picture(cfg, num, seed=0, columns=4):
    """BGR uint8 grid of ``num`` augmented training samples of the experiment ``cfg`` (a ``Config``
    whose data paths exist) with the joints of their targets drawn; ``seed`` seeds the augmentation."""
    keypoints = KeypointMeta.from_config(cfg.keypoints)
    codec = build_codec(cfg, keypoints)
    data = COCOKeypoints(cfg.data.train_ann, cfg.data.train_img_root, cfg.data, train=True, codec=codec,
                         keypoints=keypoints, seed=seed)
    images, targets, weights, _ = zip(*(data[i % len(data)] for i in range(num)))
    kps = codec.target_joints(*codec.batch_targets(torch.stack(targets), torch.stack(weights)))
    return batch_picture(torch.stack(images).numpy(), kps.numpy(), columns=columns, max_items=num,
                         keypoints=keypoints)


def main(argv=None):
    """Command line; returns the path of the picture written (exits with status 2 on a bad config)."""
    parser = argparse.ArgumentParser(description="Write a PNG grid of augmented training samples.")
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--num", type=int, default=16, help="number of samples (default 16)")
    parser.add_argument("--out", default="augmentations.png", help="picture to write (default augmentations.png)")
    parser.add_argument("--seed", type=int, default=0, help="augmentation seed (default 0)")
    parser.add_argument("--columns", type=int, default=4, help="samples per row (default 4)")
    args = parser.parse_args(argv)
    if args.num < 1 or args.columns < 1:
        parser.error("--num and --columns must be >= 1")
    try:
        picture = augmentation_picture(with_synthetic_paths(load_config(args.cfg)), args.num, args.seed,
                                       args.columns)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except DatasetError as e:
        print(f"data error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    write_image(args.out, picture)
    print(args.out)
    return args.out


if __name__ == "__main__":
    main()
