"""Entry point of the Docker Space: ``speat hub webhook`` on the port the Space exposes.

The Space keeps no state of its own (Spaces have no persistent disk): its queue lives in memory, and each start
reconciles with the Hub, so a restart, rebuild or sleep loses no event. Caches (models, stimuli) live under
``SPEAT_WEBHOOK_DATA`` (default: the home directory) and are downloaded again after a restart.

Environment (Space secrets and variables):
    SPEAT_WEBHOOK_SECRET: the webhook secret (required; a Space secret).
    HF_TOKEN: the token that opens the card pull requests (required; a Space secret).
    PORT: the port (default 7860, the ``app_port`` of README.md).
    SPEAT_WEBHOOK_WORKERS: worker threads (default 1).
    SPEAT_WEBHOOK_ARGS: more ``speat hub webhook`` options, e.g. ``--watch org:acme --tests gender``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path


def service_arguments(environ: Mapping[str, str]) -> list[str]:
    """The ``speat`` command line the Space runs."""
    return ["hub", "webhook", "--host", "0.0.0.0", "--port", environ.get("PORT", "7860"),
            "--workers", environ.get("SPEAT_WEBHOOK_WORKERS", "1"), *shlex.split(environ.get("SPEAT_WEBHOOK_ARGS", ""))]


def main() -> int:
    data = Path(os.environ.get("SPEAT_WEBHOOK_DATA") or Path.home())
    data.mkdir(parents=True, exist_ok=True)
    # Set before huggingface_hub is imported.
    os.environ.setdefault("HF_HOME", str(data / "huggingface"))
    os.environ.setdefault("SPEAT_CACHE", str(data / "speat"))
    from speat_metric.cli import main as speat

    return speat(service_arguments(os.environ))


if __name__ == "__main__":
    sys.exit(main())
