"""TopPose entry point: edit ``cfg_path`` (or pass ``--cfg``), then

    nohup python main.py >> train.log 2>&1 &
"""
import argparse
import sys

cfg_path = "configs/sample.yaml"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train and evaluate a TopPose experiment YAML.")
    parser.add_argument("--cfg", default=cfg_path, help=f"experiment YAML (default: {cfg_path})")
    args = parser.parse_args(argv)

    from processors import DPProcessor
    from processors.config import ConfigError
    try:
        DPProcessor(args.cfg).run()
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
