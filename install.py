"""Install UnfoldLDM's runtime requirements into the current Python, without touching torch.

Three ways this file runs:
  * Automatic1111 / Forge run it when the extension is installed or the WebUI starts; their
    ``launch`` module is importable then, and we use ``launch.is_installed`` / ``launch.run_pip``.
  * ComfyUI-Manager runs ``python install.py`` in this folder with ComfyUI's Python.
  * By hand: ``python install.py`` (add ``--dry-run`` to only print what would be installed).
Only requirements that are missing (or present in a version outside our bounds) are installed;
torch always stays the host's.
"""

from __future__ import annotations

import importlib.metadata
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


def satisfied(requirement: str) -> bool:
    """True when the distribution is installed in a version the requirement accepts."""
    try:
        version = importlib.metadata.version(distribution_name(requirement))
    except importlib.metadata.PackageNotFoundError:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:  # no packaging: present is good enough, never reinstall
        return True
    return Requirement(requirement).specifier.contains(version, prereleases=True)


def install(missing: list[str]) -> None:
    try:
        import launch  # Automatic1111 / Forge
    except ImportError:
        launch = None
    for requirement in missing:
        if launch is not None:
            launch.run_pip(f'install "{requirement}"', f"UnfoldLDM requirement: {requirement}")
        else:
            subprocess.check_call([sys.executable, "-m", "pip", "install", requirement])


def main(argv: list[str]) -> int:
    missing = [r for r in requirements() if not satisfied(r)]
    if not missing:
        print("UnfoldLDM: all requirements are already installed.")
        return 0
    print("UnfoldLDM: installing " + ", ".join(missing))
    if "--dry-run" not in argv:
        install(missing)
    return 0


if __name__ == "__main__" or "launch" in sys.modules:
    # A1111/Forge exec this file with their `launch` module loaded rather than running it as a script.
    result = main(sys.argv[1:] if __name__ == "__main__" else [])
    if __name__ == "__main__":
        sys.exit(result)
