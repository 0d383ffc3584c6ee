"""What a benchmark ran on: CPU model, core count, library versions and the date."""
import datetime
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
