"""speat's Spaces, each built from its own repository: the speat they install, their metadata, and publishing them.

speat publishes three Spaces: the leaderboard (`speat_metric.hub.leaderboard_space`), the evaluate module
(`speat_metric.hub.module_space`) and the webhook service (`speat_metric.hub.webhook.space`). A Space's builder
installs its ``requirements.txt`` and runs its app. speat is on no package index, so each Space carries the wheel of
the speat that publishes it (`speat_metric.hub.wheel`) and a ``requirements.txt`` that installs exactly that wheel,
with the extra the app needs, beside a CPU build of torch (`SpeatPackage`). Once a speat release exists,
``--requirement SPEC`` names it instead and no wheel is uploaded.

A Gradio Space's builder runs ``pip install -r requirements.txt`` with nothing but that file (the repository is
copied in afterwards), so the wheel is named by its URL in the Space itself, pinned by its SHA-256 (``#sha256=``,
which pip checks). That builder has no token: a private Gradio Space needs ``--requirement``. A Docker Space's
Dockerfile copies the repository first and installs the wheel from the file.

`publish_speat_space` creates or updates a Space with such files (`speat_metric.hub.publishing`): only what changed
is committed, another speat wheel is removed, an unchanged speat makes no commit, and a dry run shows the diff and
pushes nothing.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from speat_metric import __version__
from speat_metric.hub.hub import HubClient
from speat_metric.hub.publishing import PublishOutcome, publish_files, repo_state
from speat_metric.hub.wheel import SpeatWheel, build_speat_wheel

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
WHEEL_PATTERN = re.compile(r"^speat-[^/-]+-py3-none-any\.whl$")
class SpaceError(ValueError):
    """A Space cannot be published as asked; the message says what to do."""


@dataclass(frozen=True)
class SpeatPackage:
    """How a Space installs speat: the wheel of the speat that publishes it, or a released speat.

    Attributes:
        wheel: the wheel built from this speat's source (uploaded beside the app), or None.
        release: a requirement naming a released speat (``speat==0.2.0``, ``speat @ git+https://...``), or None.
    """

    wheel: SpeatWheel | None = None
    release: str | None = None

    @classmethod
    def prepare(cls, requirement: str | None, scratch: Path) -> SpeatPackage:
        """The released speat `requirement` names, or else this speat's wheel, built into `scratch`.

        Raises:
            SpaceError: `requirement` does not name speat.
            WheelError: this speat cannot be built (no source tree).
        """
        if requirement is not None:
            return cls(release=released_requirement(requirement))
        return cls(wheel=build_speat_wheel(scratch))

    def files(self) -> dict[str, bytes]:
        """The files this package puts in the Space (the wheel, if any)."""
        return {self.wheel.name: self.wheel.path.read_bytes()} if self.wheel else {}

    def requirement(self, extra: str | None, *, wheel_url: str | None) -> str:
        """The requirements-file line that installs this speat (with `extra`): the wheel by `wheel_url` (pinned by
        its SHA-256), the wheel file beside the requirements when `wheel_url` is None, or the release."""
        extras = f"[{extra}]" if extra else ""
        if self.release is not None:
            from packaging.requirements import Requirement

            requirement = Requirement(self.release)
            requirement.extras = {extra} if extra else set()
            return str(requirement)
        if wheel_url is None:
            return f"./{self.wheel.name}{extras}"
        return f"speat{extras} @ {wheel_url}#sha256={self.wheel.sha256}"

    def install_target(self, wheel_url: str | None) -> str:
        """What ``pip install`` takes to install this speat, as one shell word (no extra): the wheel's URL, or the
        release (its URL when it names one)."""
        if self.release is None:
            return f"{wheel_url}#sha256={self.wheel.sha256}"
        from packaging.requirements import Requirement

        requirement = Requirement(self.release)
        return requirement.url or str(requirement).replace(" ", "")

    def describe(self) -> str:
        """One line for cards and summaries: which speat the Space runs."""
        if self.release is not None:
            return f"the released `{self.release}`"
        return f"speat {__version__}, from the wheel `{self.wheel.name}` in this Space (SHA-256 `{self.wheel.sha256}`)"


def released_requirement(requirement: str) -> str:
    """`requirement` if it is a valid requirement of the distribution ``speat`` (``speat==0.2.0``, ``speat>=0.2``,
    ``speat @ URL``), else a `SpaceError`."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        raise SpaceError(f"--requirement {requirement!r} is not a pip requirement; e.g. 'speat==0.2.0'") from None
    if parsed.name.lower() != "speat" or parsed.extras or parsed.marker:
        raise SpaceError(f"--requirement {requirement!r} must name the speat distribution itself, without extras or "
                         "markers, e.g. 'speat==0.2.0' or 'speat @ https://.../speat-0.2.0-py3-none-any.whl'")
    return str(parsed)


def wheel_url(endpoint: str, space_id: str, wheel_name: str, revision: str = "main") -> str:
    """Where a file of a Space's repository is downloaded from (what pip fetches)."""
    return f"{endpoint.rstrip('/')}/spaces/{space_id}/resolve/{revision}/{wheel_name}"


def requirements_text(package: SpeatPackage, extra: str | None, *, wheel_url: str | None, purpose: str) -> str:
    """The ``requirements.txt`` of a Space: a CPU torch and this speat (see `SpeatPackage.requirement`)."""
    torch = metadata.version("torch").split("+")[0]
    where = ("the wheel in this repository, by its URL (the builder sees only this file) and checked against its "
             "SHA-256" if package.wheel and wheel_url else
             "the wheel file in this repository" if package.wheel else "a released speat")
    return "\n".join([
        f"# What the Space installs before it runs {purpose}. speat comes from {where};",
        "# torch is the CPU build from PyTorch's CPU index (on GPU hardware, remove the index line).",
        f"# Written by `speat hub` of speat {__version__}.",
        f"--extra-index-url {TORCH_CPU_INDEX}",
        f"torch=={torch}",
        package.requirement(extra, wheel_url=wheel_url),
        "",
    ])


def python_version() -> str:
    """The Python of this environment, ``3.X``: the Space runs the version the publisher ran."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def gradio_version() -> str:
    """The gradio of this environment: a Gradio Space's ``sdk_version`` (the app was tested against it)."""
    from speat_metric.extras import require_extra

    require_extra("space", "hub publish-*")
    return metadata.version("gradio")


def space_card(data: object, body: str) -> str:
    """A Space's README.md: `data` (``huggingface_hub.SpaceCardData``) as its YAML header, then `body`."""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def publish_speat_space(client: HubClient, space_id: str,
                        make_files: Callable[[SpeatPackage, str | None], Mapping[str, str | bytes]], *, sdk: str,
                        what: str, requirement: str | None, private: bool, dry_run: bool) -> PublishOutcome:
    """Publish a Space that installs speat: build this speat's wheel (or take the release `requirement` names),
    make the Space's files with `make_files(package, wheel URL)` and publish them (any other speat wheel at the
    Space's root is removed).

    The wheel URL is where a Gradio Space's builder downloads the wheel from (None for a Docker Space, which installs
    it from the file, and for a release).

    Raises:
        SpaceError: a private Gradio Space without `requirement`: its builder, which has no token, could not download
            the wheel. Raised before anything is built or pushed.
    """
    gradio = sdk == "gradio"
    if gradio and requirement is None and (private or repo_state(client, space_id, repo_type="space")[1]):
        raise SpaceError(f"{space_id} is private, and a Gradio Space's builder (which has no token) cannot download "
                         "the speat wheel from a private Space: make the Space public, or pass --requirement SPEC "
                         "naming a speat release it can install")
    with tempfile.TemporaryDirectory(prefix="speat-space-") as scratch:
        package = SpeatPackage.prepare(requirement, Path(scratch))
        url = wheel_url(client.endpoint, space_id, package.wheel.name) if gradio and package.wheel else None
        return publish_files(client, space_id, make_files(package, url), repo_type="space", what=what,
                             private=private, dry_run=dry_run, space_sdk=sdk, stale=WHEEL_PATTERN.match)
