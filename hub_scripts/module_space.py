"""The SpEAT evaluate module as a Hub Space: ``speat hub publish-module --space ORG/NAME``.

Afterwards ``evaluate.load("ORG/NAME")`` works for anyone who has speat installed, without ``speat register``:
evaluate downloads ``NAME.py`` from the Space's root (`space_files`). The Space holds:

- ``NAME.py``: the measurement shipped with this package (``speat_metric/speat/speat.py``), byte for byte but for a
  ``# From: TARGET`` hint on its ``speat_metric`` imports, TARGET being what ``pip install`` takes to install the
  speat of this Space: evaluate's dependency check then tells a user without speat the exact command;
- the wheel of the publishing speat and ``requirements.txt`` (`speat_metric.hub.spaces`), or a released speat
  named by ``--requirement``;
- ``app.py``: our own Gradio app (`speat_metric.hub.space_app`; evaluate's ``launch_gradio_widget`` is broken on
  gradio 6);
- ``README.md``: the Space card (sdk, versions, the ``evaluate`` and ``measurement`` tags) with the module's
  documentation and the install line.

Publishing again with nothing changed makes no commit.

Example:
    >>> publish_module("me/speat")                                                      # doctest: +SKIP
    PublishOutcome(repo_id='me/speat', status='committed', ...)
"""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import SpaceCardData

from speat_metric import __version__
from speat_metric.evaluate_registration import MODULE_PATH
from speat_metric.hub.hub import HubClient
from speat_metric.hub.publishing import PublishOutcome
from speat_metric.hub.spaces import (
    SpeatPackage,
    gradio_version,
    publish_speat_space,
    python_version,
    requirements_text,
    space_card,
)
from speat_metric.repo_ids import check_repo_id

APP_PATH = Path(__file__).with_name("space_app.py")
HINT = "# From:"


def module_source(install_target: str) -> str:
    """The measurement's source with evaluate's install hint (``# From: TARGET``) on each ``speat_metric`` import."""
    source = MODULE_PATH.read_text(encoding="utf-8")
    hinted, count = re.subn(r"^(from speat_metric[\w.]* import [^#\n]*?)[ \t]*$",
                            lambda match: f"{match.group(1)}  {HINT} {install_target}", source, flags=re.MULTILINE)
    if count == 0:
        raise RuntimeError(f"{MODULE_PATH.name} has no `from speat_metric... import` line to hint")
    return hinted


def space_files(space_id: str, package: SpeatPackage, wheel_url: str | None) -> dict[str, str | bytes]:
    """Path -> content of every file of the module's Space."""
    name = space_id.split("/")[1]
    install = package.install_target(wheel_url)
    app = re.sub(r'^MODULE_FILE = ".*"$', f"MODULE_FILE = {name + '.py'!r}", APP_PATH.read_text(encoding="utf-8"),
                 count=1, flags=re.MULTILINE)
    return {"README.md": _space_card(space_id, package, install), f"{name}.py": module_source(install), "app.py": app,
            "requirements.txt": requirements_text(package, "space", wheel_url=wheel_url,
                                                  purpose="app.py (the SpEAT measurement on uploaded embeddings)"),
            **package.files()}


def publish_module(space_id: str, *, requirement: str | None = None, private: bool = False, dry_run: bool = False,
                   token: str | None = None, endpoint: str | None = None) -> PublishOutcome:
    """Create or update the Space that serves the measurement to ``evaluate.load(space_id)``.

    Args:
        space_id: the Space, ``owner/name``; ``evaluate.load`` will look for ``name.py`` at its root.
        requirement: a released speat for the Space to install (``speat==0.2.0``) instead of this speat's wheel.
        private: create the Space as private (needs `requirement`; an existing Space keeps its visibility).
        dry_run: push nothing; the outcome carries the diff.
        token, endpoint: as in `speat_metric.hub.hub.HubClient`.

    Raises:
        ValueError: a malformed Space id or requirement, a private Space without `requirement`, a speat without
            its source tree, or a Hub failure (`HubError`).
    """
    check_repo_id(space_id, "--space", "my-org/speat")
    return publish_speat_space(HubClient(token=token, endpoint=endpoint), space_id,
                               lambda package, url: space_files(space_id, package, url), sdk="gradio",
                               what="the SpEAT measurement", requirement=requirement, private=private,
                               dry_run=dry_run)


def _space_card(space_id: str, package: SpeatPackage, install: str) -> str:
    text = _module_texts()
    data = SpaceCardData(title="SpEAT", sdk="gradio", sdk_version=gradio_version(), python_version=python_version(),
                         app_file="app.py", license="apache-2.0", tags=["evaluate", "measurement"], emoji="🗣️",
                         colorFrom="indigo", colorTo="gray", pinned=False,
                         short_description="Speech Embedding Association Test (social bias)")
    body = "\n".join([
        "# SpEAT: Speech Embedding Association Test",
        "",
        text["description"].strip(),
        "",
        "## How to use",
        "",
        "```bash",
        f"pip install '{install}'",
        "```",
        "",
        "```python",
        "import evaluate",
        "",
        f'speat = evaluate.load("{space_id}")',
        "result = speat.compute(embeddings=embeddings, groups=groups, num_permutations=100_000, seed=0)",
        "```",
        "",
        "`embeddings` is a list of float vectors and `groups` the role of each: X, Y (targets), A, B (attributes).",
        "Without speat installed, evaluate stops and prints the install command above. To measure a speech model end "
        "to end, use speat's command line: `speat evaluate MODEL --stimuli speat`.",
        "",
        f"This Space runs {package.describe()}.",
        "",
        "## Inputs and outputs",
        "",
        "```",
        text["kwargs"].strip(),
        "```",
        "",
        "## Citation",
        "",
        "```bibtex",
        text["citation"].strip(),
        "```",
        "",
        f"Published by speat {__version__} (`speat hub publish-module`).",
        "",
    ])
    return space_card(data, body)


def _module_texts() -> dict[str, str]:
    """The module's `_DESCRIPTION`, `_KWARGS_DESCRIPTION` and `_CITATION` (its card), read from the module itself."""
    from speat_metric.speat import speat

    return {"description": speat._DESCRIPTION, "kwargs": speat._KWARGS_DESCRIPTION, "citation": speat._CITATION}
