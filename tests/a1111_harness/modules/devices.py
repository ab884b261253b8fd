"""The device and dtype the WebUI runs models on (set at start-up; tests may change them)."""

import torch

cpu = torch.device("cpu")
device = cpu
dtype = torch.float32


def torch_gc() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
