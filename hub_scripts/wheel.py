"""The wheel of the speat that is running: what a Space installs, so that no Space depends on a package index.

`build_speat_wheel` builds it from this speat's own source tree (a checkout, installed in editable mode or not) with
PyPA's ``build``, without isolation (setuptools from this environment, nothing downloaded), sdist first and the wheel
from the unpacked sdist, as ``python -m build`` does: the wheel holds exactly what a release would. The build is
reproducible (``SOURCE_DATE_EPOCH`` fixes every timestamp), so the same source gives the same bytes and publishing an
unchanged speat again makes no commit.

Example:
    >>> wheel = build_speat_wheel(Path("dist"))        # doctest: +SKIP
    >>> wheel.name, wheel.sha256[:12]                  # doctest: +SKIP
    ('speat-0.1.0-py3-none-any.whl', '5f0c1d2e3a4b')
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import speat_metric
from speat_metric.extras import require_extra

SOURCE_DATE_EPOCH = "315532800"
"""1980-01-01 00:00 UTC, the earliest time a zip file can hold: every file of the wheel carries it."""


class WheelError(ValueError):
    """The running speat cannot be built into a wheel; the message says what to do instead."""


@dataclass(frozen=True)
class SpeatWheel:
    """A built speat wheel.

    Attributes:
        path: the wheel file.
        sha256: its SHA-256, hex (what pip checks in ``URL#sha256=...``).
    """

    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


def source_tree() -> Path | None:
    """The source tree of the running speat (the folder with its ``pyproject.toml``), or None when it was installed
    from a wheel or an index."""
    root = Path(speat_metric.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "speat"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def build_speat_wheel(directory: Path) -> SpeatWheel:
    """Build the running speat's wheel into `directory` (created if needed).

    Raises:
        WheelError: this speat has no source tree, or the build failed (the backend's last lines quoted).
        MissingExtraError: ``build`` or ``setuptools`` is not installed (they come with the ``hub`` extra).
    """
    source = source_tree()
    if source is None:
        raise WheelError(f"this speat {speat_metric.__version__} was installed without its source tree, so its wheel "
                         "cannot be built here: run the command from a speat checkout, or pass --requirement SPEC "
                         "naming a released speat")
    require_extra("hub", "hub publish-*")
    from build import BuildBackendException, ProjectBuilder
    from pyproject_hooks import quiet_subprocess_runner

    def runner(cmd, cwd=None, extra_environ=None):
        quiet_subprocess_runner(cmd, cwd, {**(extra_environ or {}), "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="speat-wheel-") as scratch:
        try:
            sdist = ProjectBuilder(source, python_executable=sys.executable, runner=runner).build("sdist", scratch)
            with tarfile.open(sdist) as archive:
                # Our own sdist; the "data" filter where this Python has it (3.10.12+, 3.11.4+).
                archive.extractall(scratch, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            unpacked = Path(scratch) / Path(sdist).name.removesuffix(".tar.gz")
            wheel = ProjectBuilder(unpacked, python_executable=sys.executable, runner=runner).build(
                "wheel", directory)
        except BuildBackendException as error:
            output = getattr(error.exception, "output", b"") or b""
            last = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [str(error.exception)]
            raise WheelError(f"building speat's wheel from {source} failed: {last[0]}") from None
    path = Path(wheel)
    return SpeatWheel(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
