"""Where the readers of what speat publishes get speat: one link and, when one is known to work, one install line.

Model cards, dataset cards and Spaces never name a package index or ``pip install speat`` on their own: speat is on
no index, and whoever registered the name there would have their code installed by everyone who follows a card. What
a card says comes from the operator, in one place (`SpeatSource`, made by `resolve_source` from the options that
`add_source_options` declares):

- ``--source-space ORG/NAME``: a Space that ``speat hub publish-space`` or ``publish-module`` made, which carries the
  wheel of this speat version: the link is that Space, and the install line is that wheel, pinned to the Space's
  current commit (both are checked to exist before anything is published);
- ``--source-url URL``: the page where the code lives (its repository, say): the link;
- ``--requirement SPEC``: a released speat (``speat==0.2.0``): the install line ``pip install 'SPEC'``.

Without them, a card names speat and its version, and links nothing but the papers.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from speat_metric import __version__

PAPERS = {
    "Slaughter et al. (2023)": "https://arxiv.org/abs/2310.18877",
    "Lin et al. (2024)": "https://arxiv.org/abs/2406.04997",
}
"""The method's papers: SpEAT (Findings of EMNLP 2023) and its use on speech SSL models (Interspeech 2024)."""


@dataclass(frozen=True)
class SpeatSource:
    """Where to get the speat that made a result.

    Attributes:
        url: a page to link (the operator's Space, or ``--source-url``), or None.
        install: what ``pip install`` takes to install it (a wheel's URL, or a released requirement), or None.
        operator: who publishes the results (the owner of ``--source-space``), named as their source's user.
    """

    url: str | None = None
    install: str | None = None
    operator: str | None = None

    @property
    def install_line(self) -> str | None:
        """``pip install '...'``, or None when no install is known to work."""
        return f"pip install {shlex.quote(self.install)}" if self.install else None


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """The options that say where readers get speat (see the module's docstring)."""
    group = parser.add_argument_group("where readers get speat (cards link nothing else)")
    group.add_argument("--source-space", default=None, metavar="ORG/NAME",
                       help="a Space published by `speat hub publish-space` or `publish-module` with this speat's "
                       "wheel: cards link it and install that wheel")
    group.add_argument("--source-url", default=None, metavar="URL",
                       help="a page where speat's code lives, linked from cards")
    group.add_argument("--requirement", default=None, metavar="SPEC",
                       help="a released speat (e.g. 'speat==0.2.0') that cards tell readers to pip install")


def source_from_options(args: argparse.Namespace) -> SpeatSource:
    """The `SpeatSource` of parsed `add_source_options` options (a Hub request when ``--source-space`` is given)."""
    if not (args.source_space or args.source_url or args.requirement):
        return SpeatSource()
    from speat_metric.hub.hub import HubClient

    return resolve_source(space=args.source_space, source_url=args.source_url, requirement=args.requirement,
                          client=HubClient() if args.source_space else None)


def resolve_source(*, space: str | None = None, source_url: str | None = None, requirement: str | None = None,
                   client: object | None = None) -> SpeatSource:
    """Check what the operator named and make the `SpeatSource`.

    Args:
        space: a Space holding this speat's wheel at its root (needs `client`).
        source_url: an http(s) page.
        requirement: a released speat.
        client: a `speat_metric.hub.hub.HubClient`, to look at `space`.

    Raises:
        ValueError: a malformed value, both `space` and `requirement` (two install lines), or a Space without this
            speat's wheel.
    """
    from speat_metric.hub.spaces import SpaceError, SpeatPackage, released_requirement, wheel_url
    from speat_metric.repo_ids import check_repo_id

    if space and requirement:
        raise SpaceError("--source-space and --requirement both say how to install speat; give one of them")
    url, install, operator = None, None, None
    if source_url is not None:
        parts = urlsplit(source_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SpaceError(f"--source-url {source_url!r} is not an http(s) URL")
        url = source_url
    if requirement is not None:
        install = SpeatPackage(release=released_requirement(requirement)).install_target(None)
    if space is not None:
        check_repo_id(space, "--source-space", "my-org/speat")
        commit = client.head(space, repo_type="space")
        wheel = f"speat-{__version__}-py3-none-any.whl"
        if wheel not in client.file_ids(space, "", repo_type="space", revision=commit):
            raise SpaceError(f"--source-space {space} has no {wheel} (the wheel of this speat, {__version__}): publish "
                             f"it first with `speat hub publish-space --space {space}` (or publish-module)")
        install = wheel_url(client.endpoint, space, wheel, revision=commit)
        url = url or f"{client.endpoint}/spaces/{space}"
        operator = space.split("/")[0]
    return SpeatSource(url=url, install=install, operator=operator)
