"""TopPose entry point: edit ``cfg_path`` (or pass ``--cfg``), then

    nohup python main.py >> train.log 2>&1 &

or, on several GPUs or machines, start it with PyTorch's launcher (one process per GPU)::

    torchrun --nproc_per_node 4 main.py --cfg configs/coco/res50_dconv_256x192.yaml

``--opts key=value ...`` overrides YAML keys (``--opts data.batch_size=16 optim.lr=5e-4``); ``--check`` only
scans the configured images for unreadable files. Exit codes: 0 done, 1 a failure with a one-line message
(details in train.log), 2 a configuration error, 130 / 143 stopped by Ctrl-C / SIGTERM after a checkpoint.
"""
import argparse
import os
import sys

cfg_path = "configs/sample.yaml"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train and evaluate a TopPose experiment YAML "
                                                 "(under torchrun: distributed, one process per GPU).")
    parser.add_argument("--cfg", default=cfg_path, help=f"experiment YAML (default: {cfg_path})")
    parser.add_argument("--opts", "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override YAML keys, e.g. --opts data.batch_size=16 optim.lr=5e-4")
    parser.add_argument("--check", action="store_true",
                        help="only check that every image of the configured splits can be read, then exit")
    args = parser.parse_args(argv)

    from processors.base import EXPECTED_ERRORS
    from processors.config import ConfigError
    from processors.ddp_processor import DDPProcessor, started_by_torchrun
    from processors.dp_processor import DPProcessor
    from processors.interrupts import TrainingInterrupted
    quiet = os.environ.get("RANK", "0") != "0"  # one message, not one per process
    try:
        if args.check:
            from processors.preflight import check_config_images
            return check_config_images(args.cfg, args.opts)
        solver = DDPProcessor if started_by_torchrun() else DPProcessor
        solver(args.cfg, opts=args.opts).run()
    except ConfigError as e:
        if not quiet:
            print(f"config error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        if not quiet:
            print(e, file=sys.stderr)
        return 128 + e.signum
    except EXPECTED_ERRORS as e:
        if not quiet:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {first} (details in the run's train.log)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
