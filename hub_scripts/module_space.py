"""The SpEAT evaluate module as a Hub Space: ``speat hub publish-module --space ORG/NAME``.

Afterwards ``evaluate.load("ORG/NAME")`` works for anyone, without ``speat register``: evaluate downloads
``NAME.py`` from the Space's root (`space_files`). The Space holds:

- ``NAME.py``: the measurement shipped with this package (``speat_metric/speat/speat.py``), byte for byte but for a
  ``# From: speat`` hint on its ``speat_metric`` import, which makes evaluate's dependency check tell a user without
  speat installed to ``pip install speat``;
- ``app.py``: our own Gradio app (`speat_metric.hub.space_app`; evaluate's ``launch_gradio_widget`` is broken on
  gradio 6), ``requirements.txt`` (this speat version);
- ``README.md``: the Space card, with the ``evaluate`` and ``measurement`` tags and the module's documentation.

Publishing again with nothing changed makes no commit.

Example:
    >>> publish_module("me/speat")                                                      # doctest: +SKIP
    ModuleOutcome(space_id='me/speat', status='committed', ...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import SpaceCardData
from speat_metric.hub import SPEAT_TITLE_PREFIX
from speat_metric.hub.card_merge import unified_diff
from speat_metric.hub.hub import HubClient, HubError

from speat_metric import __version__
from speat_metric.evaluate_registration import MODULE_PATH

APP_PATH = Path(__file__).with_name("space_app.py")
INSTALL_HINT = "# From: speat"
_SPACE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class ModuleOutcome:
    """What `publish_module` did: ``committed``, ``unchanged`` or ``dry-run`` (with the diff)."""

    space_id: str
    status: str
    url: str
    commit: str | None = None
    diff: str = ""

    @property
    def summary(self) -> str:
        pushed = f" commit {self.commit[:12]}" if self.commit else ""
        return (f"{self.space_id}: {self.status}{pushed} ({self.url}); load it with "
                f"evaluate.load({self.space_id!r})")


def module_source() -> str:
    """The measurement's source with evaluate's install hint on each ``speat_metric`` import."""
    source = MODULE_PATH.read_text(encoding="utf-8")
    hinted, count = re.subn(r"^(from speat_metric[\w.]* import [^#\n]*?)[ \t]*$", rf"\1  {INSTALL_HINT}", source,
                            flags=re.MULTILINE)
    if count == 0:
        raise RuntimeError(f"{MODULE_PATH.name} has no `from speat_metric... import` line to hint")
    return hinted


def space_files(space_id: str) -> dict[str, str]:
    """Path -> text of every file of the module's Space."""
    name = space_id.split("/")[1]
    app = re.sub(r'^MODULE_FILE = ".*"$', f"MODULE_FILE = {name + '.py'!r}", APP_PATH.read_text(encoding="utf-8"),
                 count=1, flags=re.MULTILINE)
    return {"README.md": _space_card(space_id), f"{name}.py": module_source(), "app.py": app,
            "requirements.txt": f"speat=={__version__}\n"}


def publish_module(space_id: str, *, private: bool = False, dry_run: bool = False, token: str | None = None,
                   endpoint: str | None = None) -> ModuleOutcome:
    """Create or update the Space that serves the measurement to ``evaluate.load(space_id)``.

    Args:
        space_id: the Space, ``owner/name``; ``evaluate.load`` will look for ``name.py`` at its root.
        private: create the Space as private (an existing one keeps its visibility).
        dry_run: push nothing; the outcome carries the diff.
        token, endpoint: as in `speat_metric.hub.hub.HubClient`.

    Raises:
        ValueError: a malformed Space id, or a Hub failure (`HubError`).
    """
    if not _SPACE_ID.match(space_id):
        raise ValueError(f"--space {space_id!r} is not a Space id; use OWNER/NAME, e.g. my-org/speat")
    client = HubClient(token=token, endpoint=endpoint)
    url = f"{client.endpoint}/spaces/{space_id}"
    try:
        head = client.head(space_id, repo_type="space")
    except HubError:
        if dry_run:
            head = None
        else:
            client.ensure_repo(space_id, repo_type="space", private=private, space_sdk="gradio")
            head = client.head(space_id, repo_type="space")
    files = space_files(space_id)
    current = {path: client.read_text(space_id, path, revision=head, repo_type="space") if head else None
               for path in files}
    changed = {path: text for path, text in files.items() if current[path] != text}
    diff = "".join(unified_diff(path, current[path], text) for path, text in changed.items())
    if dry_run:
        return ModuleOutcome(space_id, "dry-run", url, diff=diff)
    if not changed:
        return ModuleOutcome(space_id, "unchanged", url)
    info = client.commit(space_id, changed, summary=f"{SPEAT_TITLE_PREFIX} Publish the SpEAT measurement "
                         f"(speat {__version__})", description="Published by `speat hub publish-module`.",
                         repo_type="space", parent_commit=head)
    return ModuleOutcome(space_id, "committed", url, commit=info.oid)


def _space_card(space_id: str) -> str:
    text = _module_texts()
    data = SpaceCardData(title="SpEAT", sdk="gradio", app_file="app.py", license="apache-2.0",
                         tags=["evaluate", "measurement"], emoji="🗣️", colorFrom="indigo", colorTo="gray",
                         pinned=False, short_description="Speech Embedding Association Test (social bias)")
    body = "\n".join([
        "# SpEAT: Speech Embedding Association Test",
        "",
        text["description"].strip(),
        "",
        "## How to use",
        "",
        "```python",
        "import evaluate",
        "",
        f'speat = evaluate.load("{space_id}")  # needs `pip install speat`',
        "result = speat.compute(embeddings=embeddings, groups=groups, num_permutations=100_000, seed=0)",
        "```",
        "",
        "`embeddings` is a list of float vectors and `groups` the role of each: X, Y (targets), A, B (attributes).",
        "Without speat installed, evaluate stops and says `pip install speat`. To measure a speech model end to end, "
        "use speat's command line: `speat evaluate MODEL --stimuli speat`.",
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
    return f"---\n{data.to_yaml()}\n---\n{body}"


def _module_texts() -> dict[str, str]:
    """The module's `_DESCRIPTION`, `_KWARGS_DESCRIPTION` and `_CITATION` (its card), read from the module itself."""
    from speat_metric.speat import speat

    return {"description": speat._DESCRIPTION, "kwargs": speat._KWARGS_DESCRIPTION, "citation": speat._CITATION}
