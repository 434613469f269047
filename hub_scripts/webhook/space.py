"""The webhook service as a Docker Space: ``speat hub publish-webhook --space ORG/NAME``.

The Space's repository holds the files of ``webhook_space/`` (``README.md`` with ``sdk: docker``, the ``Dockerfile``,
``app.py``), a ``requirements.txt`` and the wheel of the publishing speat, or a release named by ``--requirement``
(`speat_metric.hub.spaces`). The secrets (``SPEAT_WEBHOOK_SECRET``, ``HF_TOKEN``) go in the Space's settings, never
through this command. The Space keeps no state: a restart reconciles (docs/webhook.md).
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import SpaceCard

from speat_metric.hub.hub import HubClient
from speat_metric.hub.publishing import PublishOutcome
from speat_metric.hub.spaces import SpeatPackage, publish_speat_space, requirements_text
from speat_metric.repo_ids import check_repo_id

SPACE_FOLDER = Path(__file__).resolve().parent.parent / "webhook_space"


def space_files(package: SpeatPackage) -> dict[str, str | bytes]:
    """Path -> content of every file of the webhook service's Space."""
    card = SpaceCard((SPACE_FOLDER / "README.md").read_text(encoding="utf-8"))
    card.text = card.text.rstrip("\n") + f"\n\nThis Space runs {package.describe()}.\n"
    return {"README.md": str(card), **{name: (SPACE_FOLDER / name).read_text(encoding="utf-8")
                                        for name in ("Dockerfile", "app.py")},
            "requirements.txt": requirements_text(package, "hub", wheel_url=None,
                                                  purpose="app.py (the speat webhook service)"), **package.files()}


def publish_webhook_space(space_id: str, *, requirement: str | None = None, private: bool = False,
                          dry_run: bool = False, token: str | None = None, endpoint: str | None = None
                          ) -> PublishOutcome:
    """Create or update the webhook service's Docker Space (`requirement`: a released speat instead of this one's
    wheel; `private`: for a new Space; `dry_run`: push nothing, the outcome carries the diff)."""
    check_repo_id(space_id, "--space", "my-org/speat")
    return publish_speat_space(HubClient(token=token, endpoint=endpoint), space_id,
                               lambda package, url: space_files(package), sdk="docker",
                               what="the SpEAT webhook service", requirement=requirement, private=private,
                               dry_run=dry_run)
