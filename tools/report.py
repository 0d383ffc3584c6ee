"""What a benchmark ran on, and where its results go: the machine's facts and the JSON file."""
import datetime
import json
import os
import platform

import cv2
import numpy as np
import torch


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
