"""Running a ``speat`` command as a Hugging Face Job: the one place its image, command, secrets and volumes are made.

Campaigns (``speat hub annotate-many --backend jobs``), webhook Jobs (``speat hub on-event``) and scheduled back-fills
all run speat on the Hub's machines through `run_speat_job` or `speat_job_spec`. The image either has speat already
(``--image``, e.g. a Docker Space's image built from ``speat hub publish-webhook``) or is a plain Python image that
installs the wheel the operator published (``--source-space``: `SpeatSource.install`) before running the command.
The token goes in the Job's ``secrets`` (never in its env or command line, which ``inspect_job`` shows to anyone with
access); the stimuli come from a Hub dataset mounted read-only.

Example:
    >>> runtime = JobRuntime(image="python:3.12", install="https://hf.co/spaces/me/speat/resolve/abc/speat.whl")
    >>> speat_command(runtime, ["hub", "annotate", "me/model", "--revision", "abc123"])[:2]
    ['sh', '-c']
    >>> speat_command(JobRuntime(image="hf.co/spaces/me/speat-runner"), ["--version"])
    ['speat', '--version']
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from speat_metric.repo_ids import check_repo_id

if TYPE_CHECKING:
    from huggingface_hub import HfApi, JobInfo

DEFAULT_FLAVOR = "cpu-basic"
STIMULI_MOUNT = "/stimuli"
"""Where a Job sees the stimulus dataset (``--stimuli-dataset``): its command reads ``--stimuli /stimuli``."""


@dataclass(frozen=True)
class JobRuntime:
    """Where and how a speat command runs as a Job.

    Attributes:
        image: a Docker image with speat installed, or a Python image (then `install` is required).
        install: what ``pip install`` takes to install speat first (the wheel URL of the operator's Space, pinned by
            its SHA-256: `speat_metric.hub.source.SpeatSource.install`); None when the image has speat.
        flavor: the Jobs hardware (``cpu-basic``, ``cpu-upgrade``, ``t4-small``, ``a10g-small``, ...).
        timeout: the longest a Job may run (``"2h"``, seconds as a number); None is the Hub's default.
        namespace: the user or organisation the Jobs run under (None: the token's user).
        stimuli_dataset: a (private) Hub dataset ``OWNER/NAME`` holding the stimuli, mounted read-only at
            `STIMULI_MOUNT`; None when the command downloads them or uses the demo set.
        env: extra environment variables (never a secret).
    """

    image: str
    install: str | None = None
    flavor: str = DEFAULT_FLAVOR
    timeout: str | int | None = None
    namespace: str | None = None
    stimuli_dataset: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.image or any(character.isspace() for character in self.image):
            raise ValueError(f"--image {self.image!r} is not a Docker image name")
        if self.stimuli_dataset is not None:
            check_repo_id(self.stimuli_dataset, "--stimuli-dataset", "my-org/speat-stimuli")
        secret_like = [name for name in self.env if any(word in name.upper() for word in ("TOKEN", "SECRET"))]
        if secret_like:
            raise ValueError(f"the Job environment names {', '.join(secret_like)}: secrets go in the Job's secrets, "
                             "never in its environment")


def speat_command(runtime: JobRuntime, arguments: Sequence[str]) -> list[str]:
    """The Job's command: ``speat ARGUMENTS``, after installing speat when the image does not have it."""
    if runtime.install is None:
        return ["speat", *arguments]
    return ["sh", "-c", f"pip install --quiet {shlex.quote(f'speat[hub] @ {runtime.install}')} && "
                        f"exec speat {shlex.join(arguments)}"]


def speat_job_spec(runtime: JobRuntime, arguments: Sequence[str], *, token: str,
                   labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``HfApi.run_job`` (and ``create_scheduled_job``) that run ``speat ARGUMENTS``."""
    from huggingface_hub import Volume

    volumes = [Volume(type="dataset", source=runtime.stimuli_dataset, mount_path=STIMULI_MOUNT, read_only=True)
               ] if runtime.stimuli_dataset else None
    return {"image": runtime.image, "command": speat_command(runtime, arguments),
            "env": {"HF_HUB_DISABLE_PROGRESS_BARS": "1", **runtime.env}, "secrets": {"HF_TOKEN": token},
            "flavor": runtime.flavor, "timeout": runtime.timeout, "volumes": volumes,
            "labels": dict(labels or {}), "namespace": runtime.namespace}


def run_speat_job(api: HfApi, runtime: JobRuntime, arguments: Sequence[str], *, token: str,
                  labels: Mapping[str, str] | None = None) -> JobInfo:
    """Start ``speat ARGUMENTS`` as a Job; returns its `JobInfo` (``id``, ``status.stage``)."""
    return api.run_job(**speat_job_spec(runtime, arguments, token=token, labels=labels), token=token)
