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

import argparse
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


DEFAULT_PYTHON_IMAGE = "python:3.12"
"""The image of a Job that installs the wheel of ``--source-space`` first (no ``--image``)."""


def add_job_options(parser: argparse.ArgumentParser, *, what: str = "a Job") -> None:
    """The options that say where a Job runs (``--image``, ``--flavor``, ``--timeout``, ``--namespace``,
    ``--stimuli-dataset``), `what` naming the Job in their help; read back by `job_runtime`. ``--source-space``
    comes from the source options."""
    group = parser.add_argument_group("the Hugging Face Job (speat from --image, or installed from --source-space)")
    group.add_argument("--image", default=None, help="a Docker image with speat installed; with --source-space, "
                       f"any Python image, which installs that Space's wheel first (default {DEFAULT_PYTHON_IMAGE})")
    group.add_argument("--flavor", default=DEFAULT_FLAVOR, help=f"the hardware of {what} (default {DEFAULT_FLAVOR})")
    group.add_argument("--timeout", default=None, help=f"the longest {what} may run: 3600, 30m, 2h, 1d (default: "
                       "the Hub's)")
    group.add_argument("--namespace", default=None, help="the user or organisation the Jobs run under (default: "
                       "the token's user)")
    group.add_argument("--stimuli-dataset", default=None, metavar="OWNER/NAME", help="a (private) Hub dataset of "
                       f"stimuli, mounted read-only at {STIMULI_MOUNT} where {what} reads them (instead of --stimuli)")


def job_runtime(args: argparse.Namespace, install: str | None) -> JobRuntime:
    """The `JobRuntime` of `add_job_options`. `install` is the wheel of ``--source-space`` (`SpeatSource.install`):
    when there is one, every Job installs it first (on ``--image`` or `DEFAULT_PYTHON_IMAGE`), so the speat that runs is
    the one the cards link; without it, ``--image`` must have speat.

    Raises:
        ValueError: neither an image with speat nor a wheel to install, or a malformed option.
    """
    if args.image is None and install is None:
        raise ValueError("a Job needs speat: give --image IMAGE (an image with speat installed) or --source-space "
                         "ORG/NAME (a Space holding this speat's wheel, installed first)")
    return JobRuntime(image=args.image or DEFAULT_PYTHON_IMAGE, install=install, flavor=check_flavor(args.flavor),
                      timeout=check_timeout(args.timeout), namespace=args.namespace,
                      stimuli_dataset=args.stimuli_dataset)


_TIMEOUT_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def check_flavor(flavor: str) -> str:
    """`flavor` if it is a Jobs hardware flavor huggingface_hub knows, else a ValueError naming it."""
    from huggingface_hub import JobHardware

    known = [hardware.value for hardware in JobHardware]
    if flavor not in known:
        raise ValueError(f"--flavor {flavor!r} is not a Jobs flavor (one of {', '.join(known)})")
    return flavor


def check_timeout(timeout: str | None) -> str | None:
    """`timeout` if huggingface_hub reads it as a Job's timeout (``90``, ``30m``, ``2h``, ``1d``), else a ValueError."""
    if timeout is None:
        return None
    number, unit = (timeout[:-1], timeout[-1]) if timeout[-1:] in _TIMEOUT_UNITS else (timeout, "s")
    try:
        seconds = float(number) * _TIMEOUT_UNITS[unit]
    except ValueError:
        seconds = 0
    if not seconds >= 1:
        raise ValueError(f"--timeout {timeout!r} is not a duration (e.g. 3600, 30m, 2h, 1d)")
    return timeout
