"""TopPose entry point: edit ``cfg_path`` (or pass ``--cfg``), then

    nohup python main.py >> train.log 2>&1 &

or, on several GPUs or machines, start it with PyTorch's launcher (one process per GPU)::

    torchrun --nproc_per_node 4 main.py --cfg configs/coco/res50_dconv_256x192.yaml
"""
import argparse
import os
import sys

cfg_path = "configs/sample.yaml"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train and evaluate a TopPose experiment YAML "
                                                 "(under torchrun: distributed, one process per GPU).")
    parser.add_argument("--cfg", default=cfg_path, help=f"experiment YAML (default: {cfg_path})")
    args = parser.parse_args(argv)

    from processors.config import ConfigError
    from processors.ddp_processor import DDPProcessor, started_by_torchrun
    from processors.dp_processor import DPProcessor
    solver = DDPProcessor if started_by_torchrun() else DPProcessor
    try:
        solver(args.cfg).run()
    except ConfigError as e:
        if os.environ.get("RANK", "0") == "0":  # one message, not one per process
            print(f"config error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
