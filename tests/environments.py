"""Fresh virtual environments in which speat comes only from a wheel, for the packaging and Space-building tests.

Installing torch, transformers and gradio again for every test would take minutes and need a package index, so a
fresh environment borrows them from the test environment: its site-packages gets a ``.pth`` line naming an overlay
folder of symbolic links to every entry of the test environment's site-packages, except those of speat itself (the
editable install of the checkout) and of the distributions the caller leaves out (for example the extras, to get
an environment of the base install). pip then sees the borrowed distributions as installed and resolves offline
(``--no-index``); the only speat it can find is the one it installs from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
EXTRAS_DISTRIBUTIONS = ("gradio", "matplotlib", "scikit-learn", "fastapi", "uvicorn", "build")
"""What the hub, train and space extras bring directly: left out, they make an environment of the base install."""


@dataclass(frozen=True)
class FreshEnvironment:
    """A virtual environment and how to run things in it."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for its processes: its bin first on PATH, nothing of the test run's imports."""
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not key.startswith("PYTEST")}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(self.root),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_UPDATE_DOWNLOAD_COUNTS="0")
        env.update(extra)
        return env

    def pip_install(self, *arguments: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
                    ) -> subprocess.CompletedProcess:
        """``pip install --no-index ARGUMENTS`` into this environment (pip of the test environment, ``--python``)."""
        return subprocess.run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-index",
                               "--no-cache-dir", "--disable-pip-version-check", *arguments],
                              capture_output=True, text=True, timeout=600, cwd=cwd, env=dict(env or self.env()))

    def run(self, *command: str | Path, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 600
            ) -> subprocess.CompletedProcess:
        return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                              cwd=cwd, env=dict(env or self.env()))


def fresh_environment(root: Path, *, leave_out: Iterable[str] = ()) -> FreshEnvironment:
    """A new virtual environment at `root` that borrows the test environment's packages but speat's and
    `leave_out`'s (distribution names)."""
    root = root.resolve()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    overlay = root / "borrowed"
    overlay.mkdir()
    hidden = _top_level_entries(["speat", *leave_out])
    for entry in SITE_PACKAGES.iterdir():
        if entry.name not in hidden and not entry.name.startswith("__editable__") and entry.suffix != ".pth":
            (overlay / entry.name).symlink_to(entry)
    environment = FreshEnvironment(root)
    site_packages = Path(subprocess.run([str(environment.python), "-c", "import sysconfig; print(sysconfig."
                                         "get_paths()['purelib'])"], capture_output=True, text=True, check=True
                                        ).stdout.strip())
    (site_packages / "borrowed.pth").write_text(f"{overlay}\n")
    return environment


def _top_level_entries(distributions: Iterable[str]) -> set[str]:
    """The names in site-packages that belong to these distributions (their packages, modules and dist-info)."""
    names: set[str] = set()
    for name in distributions:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        names |= {Path(file).parts[0] for file in files if not str(file).startswith("..")}
    return names
