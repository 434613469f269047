"""Entry point of the Docker Space: ``speat hub webhook`` on the port the Space exposes, state under ``/data``.

Environment (Space secrets and variables):
    SPEAT_WEBHOOK_SECRET: the webhook secret (required; a Space secret).
    HF_TOKEN: the token that opens the card pull requests (required; a Space secret).
    PORT: the port (default 7860, the ``app_port`` of README.md).
    SPEAT_WEBHOOK_DATA: where the job store and the caches live (default ``/data``, the Space's persistent storage,
        when it exists; else the home directory, which a restart wipes).
    SPEAT_WEBHOOK_WORKERS: worker threads (default 1).
    SPEAT_WEBHOOK_ARGS: more ``speat hub webhook`` options, e.g. ``--tests gender --permutations 100000``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

PERSISTENT_STORAGE = Path("/data")


def data_directory(environ: Mapping[str, str]) -> Path:
    """The Space's persistent storage when it has one, else the home directory."""
    if environ.get("SPEAT_WEBHOOK_DATA"):
        return Path(environ["SPEAT_WEBHOOK_DATA"])
    return PERSISTENT_STORAGE if PERSISTENT_STORAGE.is_dir() else Path.home()


def service_arguments(environ: Mapping[str, str]) -> list[str]:
    """The ``speat`` command line the Space runs."""
    data = data_directory(environ)
    return ["hub", "webhook", "--host", "0.0.0.0", "--port", environ.get("PORT", "7860"),
            "--db", str(data / "speat-webhook.sqlite"), "--workers", environ.get("SPEAT_WEBHOOK_WORKERS", "1"),
            *shlex.split(environ.get("SPEAT_WEBHOOK_ARGS", ""))]


def main() -> int:
    data = data_directory(os.environ)
    data.mkdir(parents=True, exist_ok=True)
    # Model downloads, stimuli and embeddings persist with the job store (set before huggingface_hub is imported).
    os.environ.setdefault("HF_HOME", str(data / "huggingface"))
    os.environ.setdefault("SPEAT_CACHE", str(data / "speat"))
    if data != PERSISTENT_STORAGE:
        print(f"warning: no persistent storage at {PERSISTENT_STORAGE}; the job store and caches in {data} are lost "
              "when the Space restarts", file=sys.stderr)
    from speat_metric.cli import main as speat

    return speat(service_arguments(os.environ))


if __name__ == "__main__":
    sys.exit(main())
