"""The SpEAT leaderboard as a Hub Space: ``speat hub publish-space --space ORG/NAME [--results-repo ORG/DATA]``.

The Space runs speat's Gradio app (`speat_metric.space`) from the speat it installs (the publisher's wheel, or a
release named by ``--requirement``; see `speat_metric.hub.spaces`). Its repository holds:

- ``app.py``: a launcher of `speat_metric.space.app` whose defaults are the settings given when publishing
  (``--results-repo`` becomes ``SPEAT_SPACE_REPO``); the Space's variables override them;
- ``requirements.txt`` and the wheel: speat with its ``space`` extra, and a CPU torch;
- ``README.md``: the Space card (sdk, sdk_version, python_version, app_file, tags) saying what it shows and how it
  was built.

Publishing again with nothing changed makes no commit.

Example:
    >>> publish_leaderboard("me/speat-leaderboard", results_repo="me/speat-results")   # doctest: +SKIP
    PublishOutcome(repo_id='me/speat-leaderboard', status='committed', ...)
"""

from __future__ import annotations

from huggingface_hub import SpaceCardData

from speat_metric import __version__
from speat_metric.hub.hub import HubClient
from speat_metric.hub.publishing import PublishOutcome
from speat_metric.hub.spaces import (
    SpaceError,
    SpeatPackage,
    gradio_version,
    publish_speat_space,
    python_version,
    requirements_text,
    space_card,
)
from speat_metric.repo_ids import check_repo_id

APP = '''"""The SpEAT leaderboard Space, published by `speat hub publish-space` (speat {version}).

It runs speat's own Gradio app (`speat_metric.space`), from the speat that requirements.txt installs. The settings
below are the defaults given when publishing; the Space's variables of the same names override them.
"""

import os

{settings}
from speat_metric.space.app import launch, settings_from_environment

if __name__ == "__main__":
    launch(**settings_from_environment())
'''


def app_source(results_repo: str | None, revision: str | None) -> str:
    """The Space's ``app.py``: speat's app, with the publisher's settings as defaults."""
    settings = [f"os.environ.setdefault({key!r}, {value!r})"
                for key, value in (("SPEAT_SPACE_REPO", results_repo), ("SPEAT_SPACE_REVISION", revision))
                if value is not None]
    return APP.format(version=__version__, settings="\n".join(settings) or "# (the bundled example records)")


def space_files(space_id: str, package: SpeatPackage, wheel_url: str | None, *, results_repo: str | None,
                revision: str | None, endpoint: str) -> dict[str, str | bytes]:
    """Path -> content of every file of the leaderboard's Space."""
    return {"README.md": _space_card(package, results_repo, endpoint), "app.py": app_source(results_repo, revision),
            "requirements.txt": requirements_text(package, "space", wheel_url=wheel_url,
                                                  purpose="app.py (the SpEAT leaderboard)"),
            **package.files()}


def publish_leaderboard(space_id: str, *, results_repo: str | None = None, revision: str | None = None,
                        requirement: str | None = None, private: bool = False, dry_run: bool = False,
                        token: str | None = None, endpoint: str | None = None) -> PublishOutcome:
    """Create or update the leaderboard Space.

    Args:
        space_id: the Space, ``owner/name``.
        results_repo: the Hub dataset of ``speat hub push-results`` it shows (default: the bundled example records,
            synthetic).
        revision: a branch, tag or commit of `results_repo` (default main).
        requirement: a released speat to install (``speat==0.2.0``) instead of this speat's wheel.
        private: create the Space as private (needs `requirement`; an existing Space keeps its visibility).
        dry_run: push nothing; the outcome carries the diff.
        token, endpoint: as in `speat_metric.hub.hub.HubClient`.

    Raises:
        ValueError: a malformed id or requirement, a results dataset the Hub does not have, a private Space without
            `requirement`, a speat without its source tree, or a Hub failure (`HubError`).
    """
    check_repo_id(space_id, "--space", "my-org/speat")
    if results_repo is not None:
        check_repo_id(results_repo, "--results-repo")
    if revision is not None and results_repo is None:
        raise SpaceError("--results-revision applies to --results-repo; give --results-repo ORG/NAME too")
    client = HubClient(token=token, endpoint=endpoint)
    if results_repo is not None:
        client.head(results_repo, revision or "main", repo_type="dataset")  # it exists: the Space will find it
    return publish_speat_space(
        client, space_id, lambda package, url: space_files(space_id, package, url, results_repo=results_repo,
                                                           revision=revision, endpoint=client.endpoint),
        sdk="gradio", what="the SpEAT leaderboard", requirement=requirement, private=private, dry_run=dry_run)


def _space_card(package: SpeatPackage, results_repo: str | None, endpoint: str) -> str:
    data = SpaceCardData(title="SpEAT social bias of speech models", sdk="gradio", sdk_version=gradio_version(),
                         python_version=python_version(), app_file="app.py", license="apache-2.0", emoji="🗣️",
                         colorFrom="indigo", colorTo="yellow", pinned=False,
                         short_description="Browse, compare and explain SpEAT social-bias results",
                         tags=["speech", "bias", "fairness", "self-supervised-learning", "leaderboard"],
                         datasets=[results_repo] if results_repo else None)
    source = (f"the Hub dataset [`{results_repo}`]({endpoint}/datasets/{results_repo}) written by "
              "`speat hub push-results`" if results_repo else
              "speat's bundled example records (made on **synthetic** stimuli: a demonstration, not a bias "
              "measurement)")
    body = "\n".join([
        "# SpEAT: social bias in self-supervised speech models",
        "",
        "A leaderboard and explorer of Speech Embedding Association Test (SpEAT) results: d, p and confidence "
        "intervals of each test for each model, revision and compressed variant (real and synthetic stimuli ranked "
        "apart); the published values of Slaughter et al. (2023, https://arxiv.org/abs/2310.18877) and Lin et al. "
        "(2024, https://arxiv.org/abs/2406.04997) in a separate view; bias against training steps, pruning, "
        "distillation depth and layer; every result's provenance and the command that reproduces it; the "
        "per-speaker association scores behind a d; and SpEAT on your own uploaded embeddings.",
        "",
        f"It shows {source}. Space variables change that:",
        "",
        "| variable | what |",
        "|---|---|",
        "| `SPEAT_SPACE_REPO` | the results dataset (`ORG/NAME`); a private one needs the secret `HF_TOKEN` |",
        "| `SPEAT_SPACE_REVISION` | its branch, tag or commit (default `main`) |",
        "| `SPEAT_SPACE_RESULTS` | a directory of result JSON files instead |",
        "| `SPEAT_SPACE_EVALUATE_MODELS` | `1` lets visitors evaluate Hub models (queued one at a time); leave it off "
        "on CPU-basic hardware |",
        "",
        f"The Space runs {package.describe()}; `requirements.txt` installs it with its `space` extra and a CPU "
        "build of torch.",
        "",
        f"Published by speat {__version__} (`speat hub publish-space`).",
        "",
    ])
    return space_card(data, body)
