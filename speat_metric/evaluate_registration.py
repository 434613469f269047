"""Make ``evaluate.load("speat")`` work offline, from any working directory.

evaluate 0.4 resolves a bare module name in three places, in order: ``./speat/speat.py`` under the current
directory, the Hub (``evaluate-metric/speat`` and its siblings), and finally its modules cache,
``$HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-measurement--speat/<64-hex hash>/speat.py``, which is where it
keeps every module it has loaded before. The first depends on where you stand and the second on the network; the
third works everywhere, so `register_evaluate_module` writes a two-line shim there. The shim imports the measurement
installed with this package, so the cached copy can never drift from the installed code, and re-registering is a
no-op. evaluate logs a warning ("Using the latest cached version of the module ...") when it takes this route.

The module file itself stays loadable by path: ``evaluate.load(speat_metric.evaluate_registration.MODULE_PATH)``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from speat_metric.files import atomic_write_text, check_writable_directory

MODULE_PATH = Path(__file__).parent / "speat" / "speat.py"
"""The measurement script shipped with the package; ``evaluate.load(str(MODULE_PATH))`` loads it directly."""

_CACHE_NAME = "evaluate-measurement--speat"
_SHIM = '''"""Registered by `speat register`: the SpEAT measurement installed with the speat package."""
from speat_metric.speat.speat import Speat  # noqa: F401
'''


def register_evaluate_module(modules_cache: str | Path | None = None) -> Path:
    """Install the shim that lets ``evaluate.load("speat")`` find the measurement without network access, in
    `modules_cache` (default: evaluate's, ``HF_MODULES_CACHE``); returns the path of the ``speat.py`` shim."""
    if modules_cache is None:
        from evaluate import config  # imported late: evaluate reads HF_MODULES_CACHE at import time

        modules_cache = config.HF_MODULES_CACHE
    check_writable_directory(Path(modules_cache), "--modules-cache", "the evaluate modules cache")
    directory = Path(modules_cache)
    for package in ("evaluate_modules", "metrics", _CACHE_NAME, hashlib.sha256(_SHIM.encode()).hexdigest()):
        directory = directory / package
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "__init__.py").touch(exist_ok=True)
    atomic_write_text(directory / "speat.py", _SHIM)
    return directory / "speat.py"

