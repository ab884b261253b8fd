"""Install UnfoldLDM's runtime requirements into the current Python, without touching torch.

Three ways this file runs:
  * Automatic1111 / Forge run it when the extension is installed or the WebUI starts; their
    ``launch`` module is importable then, and we use ``launch.is_installed`` (asked with import
    names: ``PIL``, ``yaml``, ...) and ``launch.run_pip``.
  * ComfyUI-Manager runs ``python install.py`` in this folder with ComfyUI's Python.
  * By hand: ``python install.py`` (add ``--dry-run`` to only print what would be installed).
Only requirements that are missing (or present in a version outside our bounds) are installed;
torch always stays the host's.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NEVER_TOUCH = {"torch", "torchvision", "torchaudio"}


def requirements() -> list[str]:
    """The lines of requirements.txt, without comments and without torch."""
    lines = []
    for raw in (HERE / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and distribution_name(line).lower() not in NEVER_TOUCH:
            lines.append(line)
    return lines


def distribution_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]


# Distribution name (lower case) -> the name it is imported by, where the two differ.
IMPORT_NAMES = {"pillow": "PIL", "pyyaml": "yaml"}


def import_name(requirement: str) -> str:
    """The module a requirement provides: what ``launch.is_installed`` is asked about."""
    dist = distribution_name(requirement)
    return IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_"))


def _host_launch():
    try:
        import launch  # Automatic1111 / Forge
    except ImportError:
        return None
    return launch if hasattr(launch, "run_pip") else None


def present(requirement: str, launch=None) -> bool:
    """Whether the requirement's module can be imported: asked through the WebUI's
    ``launch.is_installed`` (by import name) when there is one, else found with importlib."""
    name = import_name(requirement)
    if launch is not None and hasattr(launch, "is_installed"):
        return bool(launch.is_installed(name))
    return importlib.util.find_spec(name) is not None


def satisfied(requirement: str, launch=None) -> bool:
    """True when the requirement is present in a version it accepts. Present without readable
    version metadata counts as satisfied: what is there is never reinstalled."""
    if not present(requirement, launch):
        return False
    try:
        version = importlib.metadata.version(distribution_name(requirement))
        from packaging.requirements import Requirement
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return True
    return Requirement(requirement).specifier.contains(version, prereleases=True)


def install(missing: list[str], launch=None) -> None:
    for requirement in missing:
        if launch is not None:
            launch.run_pip(f'install "{requirement}"', f"UnfoldLDM requirement: {requirement}")
        else:
            subprocess.check_call([sys.executable, "-m", "pip", "install", requirement])


def main(argv: list[str]) -> int:
    launch = _host_launch()
    missing = [r for r in requirements() if not satisfied(r, launch)]
    if not missing:
        print("UnfoldLDM: all requirements are already installed.")
        return 0
    print("UnfoldLDM: installing " + ", ".join(missing))
    if "--dry-run" not in argv:
        install(missing, launch)
    return 0


if __name__ == "__main__" or "launch" in sys.modules:
    # A1111/Forge exec this file with their `launch` module loaded rather than running it as a script.
    result = main(sys.argv[1:] if __name__ == "__main__" else [])
    if __name__ == "__main__":
        sys.exit(result)
