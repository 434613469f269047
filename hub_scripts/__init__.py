"""SpEAT results on the Hugging Face Hub: model cards, card pull requests, campaigns and webhooks (locally, on Jobs or
Slurm), the results dataset and the Spaces.

Modules, in the order data flows (records -> card -> Hub):

- ``card``: render `EvaluationRecord`s as a card section, ``model-index`` results and ``.eval_results/speat.yaml``,
  and merge them into an existing README without touching anything else (pure text, no network).
- ``hub``: the Hub operations (`HubClient`): revisions, files, our pull requests (found, updated, never duplicated),
  commits, model search, card validation.
- ``annotate``: evaluate a model at a commit and open or update its card PR (`annotate_model`), or publish existing
  records (`publish_records`).
- ``campaign_policy``: what every way of annotating honours on other people's repositories: the opt-out list and
  the daily cap on new pull requests (`CampaignPolicy`).
- ``batch``: ``speat hub annotate-many``, resumable through a state file (the ``local`` backend).
- ``jobs``: the one place a speat command becomes a Hugging Face Job (image, command, secrets, volumes).
- ``campaign``: ``annotate-many --backend jobs|slurm``: shards on Jobs or Slurm (submitit), followed and re-submitted.
- ``webhook_events``, ``webhooks`` and ``json_logs``: what both ways of following pushes share: which events ask
  for work, the webhook secret and registration, and the service's and Jobs' JSON-lines logs.
- ``on_event`` and ``schedule``: ``speat hub on-event`` (what a webhook's Job runs) and ``speat hub schedule`` (a
  scheduled back-fill Job).
- ``results_dataset``: ``speat hub push-results``, records as a Hub dataset that ``datasets.load_dataset`` reads.
- ``module_space``: ``speat hub publish-module``, the evaluate module as a Hub Space.
- ``cli``: the ``speat hub`` subcommands; ``webhook/`` is the automatic-annotation service (``speat hub webhook``).

Everything speat writes to the Hub is recognisable: commit summaries and pull-request titles start with
`SPEAT_TITLE_PREFIX` and descriptions contain `SPEAT_COMMIT_MARKER` (see `is_speat_change`), so that the webhook
service can ignore events caused by our own commits and pull requests.
"""

SPEAT_COMMIT_MARKER = "speat-bot"
"""Appears in the summary and the description of every commit and pull request speat makes on the Hub."""

SPEAT_TITLE_PREFIX = f"[{SPEAT_COMMIT_MARKER}]"
"""Every commit summary and pull-request title speat writes starts with this."""

DUPLICATE_MARKER = f"{SPEAT_COMMIT_MARKER}:duplicate"
"""In the comment with which speat closes a pull request it opened twice (two annotations at once): such a close is
speat's own housekeeping, not an owner declining."""


def is_speat_change(text: str | None) -> bool:
    """Whether a commit message, commit summary or pull-request title or description was written by speat.

    Example:
        >>> is_speat_change("[speat-bot] SpEAT social-bias results"), is_speat_change("Update README.md")
        (True, False)
    """
    return bool(text) and SPEAT_COMMIT_MARKER in text
