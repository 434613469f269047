"""Put a model's SpEAT results on its Hub card: evaluate at a commit, render, then open, update or skip the card PR.

NOTE for the webhook service (issue 10): this interface is final and is what its worker calls::

    annotate_model(repo_id: str, *, revision: str, settings: EvaluationSettings, create_pr: bool = True,
                   force: bool = False, allow_synthetic: bool = False, dry_run: bool = False,
                   token: str | None = None, endpoint: str | None = None, source: SpeatSource = SpeatSource(),
                   policy: CampaignPolicy | None = None) -> AnnotationOutcome

``policy`` (`speat_metric.hub.campaign_policy`) carries the operator's opt-out list and daily cap on new pull
requests: an opted-out repository is not touched (``opted-out``), a model that would get a new pull request once
the cap is reached waits, unevaluated (``deferred``), and the policy's ledger counts what was opened or declined.

``AnnotationOutcome.status`` is one of `STATUSES`. Our commits and pull requests carry
``speat_metric.hub.SPEAT_COMMIT_MARKER`` in their summary, title and description (test with
``speat_metric.hub.is_speat_change``), so events they cause can be ignored.

The steps, each looking before it writes (``huggingface/community-evals``' rule: never a duplicate PR):

1. check the settings (synthetic stimuli are refused unless allowed) and the opt-out list; pin the revision to its
   commit sha;
2. look at the repository: speat's open pull request (to update instead of opening another), one the owner closed
   (then stop, unless `force`), and the card as it stands there (invalid YAML or broken markers stop here, before
   any evaluation); a card that already shows these settings at this revision needs no evaluation at all;
3. evaluate the model at that commit (`speat_metric.evaluation.evaluate_models`); with ``--pooling per-layer``
   twice, per layer (the card's figure of d per layer) and with the mean of all layers (its table and
   ``model-index``), the second from the embedding cache; for a fine-tune, its base model too (`find_base`);
4. render and merge (`speat_metric.hub.card`, `speat_metric.hub.card_merge`): our entries replaced, everything else
   byte-identical;
5. push only what changed (README.md, ``.eval_results/speat.yaml``, the layer figure `FIGURE_PATH` compared by its
   Hub digest), as one commit: onto our open PR, as a new PR, or to main (`create_pr=False`); nothing
   changed means no commit and no PR (a new PR waits when the policy's daily cap is reached). `dry_run` stops
   before pushing and returns the unified diff.

`publish_records` does steps 2, 4 and 5 for records that already exist (``speat hub annotate --results DIR``); it
evaluates no base model.

**A fine-tune against its base.** When the card at the evaluated commit names ``base_model`` (a string, or a list:
its first entry; the repository itself is ignored), the base is evaluated at its current commit with the same
settings, and the section states per test both d and Δd with its paired interval (`speat_metric.hub.card.BaseResults`,
`speat_metric.comparison.compare_records`). A base that cannot be resolved or evaluated (missing, gated, no weights,
not a speech encoder) never fails the annotation: the section says so in one line and the log warns. The card's
provenance records ``base@commit``, so a new commit of the base makes the card out of date (one request per
annotation: the base's head).

Example:
    >>> from speat_metric.evaluation import EvaluationSettings
    >>> outcome = annotate_model("me/my-hubert", revision="main",                        # doctest: +SKIP
    ...                          settings=EvaluationSettings(stimuli="speat"))
    >>> outcome.status, outcome.pr_url                                                  # doctest: +SKIP
    ('opened-pr', 'https://huggingface.co/me/my-hubert/discussions/3')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from speat_metric import __version__
from speat_metric.evaluation import EvaluationSettings
from speat_metric.hub import SPEAT_COMMIT_MARKER, SPEAT_TITLE_PREFIX
from speat_metric.hub.benchmark import load_benchmark
from speat_metric.hub.campaign_policy import CampaignPolicy
from speat_metric.hub.card import (
    EVAL_RESULTS_PATH,
    FIGURE_PATH,
    README_PATH,
    BaseResults,
    CardContent,
    CardError,
    is_card_path,
    render_card,
    require_matplotlib,
)
from speat_metric.hub.card_merge import card_provenance, check_card, merge_card
from speat_metric.hub.hub import HubClient, HubError, PullRequest
from speat_metric.hub.publishing import unified_diff
from speat_metric.hub.source import SpeatSource
from speat_metric.pooling import LayerPooling
from speat_metric.repo_ids import check_repo_id
from speat_metric.results import EvaluationRecord

logger = logging.getLogger(__name__)

STATUSES = ("opened-pr", "updated-pr", "committed", "unchanged", "skipped-owner-closed", "dry-run", "deferred",
            "opted-out")
"""What an annotation did: opened a pull request, added a commit to our open one, committed to main, found nothing
to change, left alone a repository whose owner closed our pull request, (dry run) only computed the diff, left a
new pull request for another day (the policy's daily cap), or touched nothing (the repository opted out)."""

PR_TITLE = f"{SPEAT_TITLE_PREFIX} Add SpEAT social-bias results"


@dataclass(frozen=True)
class AnnotationOutcome:
    """What `annotate_model` or `publish_records` did.

    Attributes:
        repo_id: the model repository.
        status: one of `STATUSES`.
        evaluated_revision: the commit sha the results are of (pinned in the card).
        pr_url: the pull request opened, updated or found (None when committing to main or nothing exists).
        pr_number: its number.
        commit: the commit our change made (None when nothing was pushed).
        diff: the unified diff of README.md and ``.eval_results/speat.yaml`` (dry runs; empty when nothing changes).
        records: the records the card shows (empty when no evaluation was needed).
        reason: why a model was ``deferred`` or ``opted-out``.
    """

    repo_id: str
    status: str
    evaluated_revision: str
    pr_url: str | None = None
    pr_number: int | None = None
    commit: str | None = None
    diff: str = ""
    records: tuple[EvaluationRecord, ...] = ()
    reason: str | None = None

    @property
    def summary(self) -> str:
        """One line for people, e.g. ``me/model: opened-pr https://.../discussions/1 (revision 0123abcd)``."""
        where = f" {self.pr_url}" if self.pr_url else f" commit {self.commit[:12]}" if self.commit else ""
        note = {"unchanged": " (the card already shows these results)",
                "skipped-owner-closed": " (the owner closed our pull request; --force opens a new one)",
                "dry-run": " (nothing pushed; nothing would change)" if not self.diff else " (nothing pushed)",
                }.get(self.status, "")
        if self.reason:
            note = f" ({self.reason})"
        if self.status == "opted-out":  # nothing was asked of the Hub: there is no revision to show
            return f"{self.repo_id}: {self.status}{note}"
        return f"{self.repo_id}: {self.status}{where}{note} (revision {self.evaluated_revision[:12]})"


@dataclass(frozen=True)
class _Target:
    """Where a card change goes, and the card as it stands there."""

    base_commit: str
    pull_request: PullRequest | None
    declined: PullRequest | None
    readme: str | None
    eval_file: str | None


def settings_fingerprint(settings: EvaluationSettings) -> str:
    """A short hash of every setting that changes the results (not the device, cache or progress bars, nor the revision,
    which the card's provenance records beside it)."""
    relevant = {
        "tests": list(settings.tests), "stimuli": settings.stimuli, "allow_missing": settings.allow_missing,
        "layer_pooling": [settings.layer_pooling.mode, settings.layer_pooling.layer],
        "frame_pooling": settings.frame_pooling, "permutations": settings.num_permutations, "seed": settings.seed,
        "dtype": settings.dtype, "trim_silence": settings.trim_silence,
        "profile": settings.profile, "cmvn": settings.cmvn, "benchmark": settings.benchmark, "speat": __version__,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def card_up_to_date(client: HubClient, repo_id: str, readme: str | None, commit: str, fingerprint: str, *,
                    base: str | None = None) -> str | None:
    """The revision at which a card (`readme`) shows results of this speat with these settings (`fingerprint`), when
    that revision is `commit` or differs from it only in the card; None when the card needs our evaluation. The one
    rule of "already annotated", for `annotate_model` and the webhook service's reconciliation.

    `base` is the fine-tune's base as the card must show it (`BaseResults.key`, ``repo@commit``); a card that
    compares with another base or commit, or with none, is out of date. A caller that does not know the base (None)
    finds a fine-tune's card out of date and leaves the decision to `annotate_model`, which looks the base up."""
    shown = card_provenance(readme) or {}
    expected = {"revision": commit, "speat": __version__, "settings": fingerprint}
    if base is not None:
        expected["base"] = base
    if {**shown, "revision": commit} != expected:
        return None
    if shown["revision"] == commit:
        return commit
    changed = client.changed_paths(repo_id, shown["revision"], commit)
    return shown["revision"] if changed is not None and all(is_card_path(path) for path in changed) else None


def check_settings(settings: EvaluationSettings, *, allow_synthetic: bool = False) -> None:
    """Raise `CardError` now, before any work, for settings whose results could not go on a card."""
    study_tests = [test for test in settings.tests if not test.endswith(".json")]  # custom tests bring their audio
    if settings.stimuli == "demo" and study_tests and not allow_synthetic:
        raise CardError("--stimuli demo is the embedded SYNTHETIC demo set: its results are a pipeline check, not a "
                        "bias measurement, and are refused for model cards; use --stimuli speat (the study's "
                        "stimuli), or pass --allow-synthetic to publish them labelled as synthetic")
    if settings.layer_pooling.mode == "per-layer":
        require_matplotlib()  # the card's figure of d per layer, checked before any evaluation


def headline_settings(settings: EvaluationSettings) -> EvaluationSettings:
    """The settings of the one result per test that a card's table and ``model-index`` show: with ``--pooling
    per-layer`` the mean of all layers (the studies' choice; the per-layer results draw the figure), else `settings`."""
    if settings.layer_pooling.mode != "per-layer":
        return settings
    return dataclasses.replace(settings, layer_pooling=LayerPooling("mean"))


def base_model_id(readme: str | None, repo_id: str) -> str | None:
    r"""The base model a card's metadata names (``base_model``: a string, or a list whose first entry counts), or
    None when it names none, only the repository itself, or its metadata cannot be read.

    Example:
        >>> base_model_id("---\nbase_model:\n- facebook/hubert-base-ls960\n- other/model\n---\n", "me/ft")
        'facebook/hubert-base-ls960'
        >>> base_model_id("---\nbase_model: me/ft\n---\n", "me/ft") is None
        True
    """
    if not readme:
        return None
    from huggingface_hub import ModelCard

    try:
        named = ModelCard(readme, ignore_metadata_errors=True).data.to_dict().get("base_model")
    except Exception as error:  # an unreadable header names no base; the card check reports it where it matters
        logger.warning("%s: the card's metadata cannot be read (%s); no base model is compared", repo_id, error)
        return None
    if isinstance(named, list):
        named = named[0] if named else None
    if not isinstance(named, str) or not named.strip() or named.strip().lower() == repo_id.lower():
        return None
    return named.strip()


def find_base(client: HubClient, repo_id: str, readme: str | None) -> BaseResults | None:
    """The fine-tune's base (`base_model_id` of its card at the evaluated commit) pinned to its current commit, or
    with the reason it cannot be evaluated (not a repository id, missing, no access); None without a base."""
    base_id = base_model_id(readme, repo_id)
    if base_id is None:
        return None
    try:
        check_repo_id(base_id, "base_model", "facebook/hubert-base-ls960")
        return BaseResults(base_id, revision=client.head(base_id))
    except (ValueError, HubError) as error:
        return _base_failed(repo_id, BaseResults(base_id), error)


def evaluate_base(repo_id: str, base: BaseResults, settings: EvaluationSettings) -> BaseResults:
    """`base` evaluated at its commit with the fine-tune's (headline) settings; any failure is the base's problem,
    never the fine-tune's: the card then says the base could not be evaluated, and why."""
    if base.problem is not None:
        return base
    from speat_metric.evaluation import evaluate_models

    try:
        records = evaluate_models([base.repo_id], dataclasses.replace(settings, revision=base.revision))
    except Exception as error:  # missing weights, gated files, not a speech encoder, ...: see the docstring
        return _base_failed(repo_id, base, error)
    return dataclasses.replace(base, records=tuple(records))


def one_line_reason(error: BaseException) -> str:
    """An exception as the one line a state file, a summary record or a card says."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(error, (ValueError, FileNotFoundError)) else f"{type(error).__name__}: {first}"


def _base_failed(repo_id: str, base: BaseResults, error: BaseException) -> BaseResults:
    reason = one_line_reason(error)
    logger.warning("%s: its base model %s could not be evaluated, so the card compares with no base: %s", repo_id,
                   base.repo_id, reason)
    return dataclasses.replace(base, problem=reason.rstrip(".") + ".")


def annotate_model(repo_id: str, *, revision: str, settings: EvaluationSettings, create_pr: bool = True,
                   force: bool = False, allow_synthetic: bool = False, dry_run: bool = False,
                   token: str | None = None, endpoint: str | None = None, source: SpeatSource = SpeatSource(),
                   policy: CampaignPolicy | None = None) -> AnnotationOutcome:
    """Evaluate a Hub model at one commit and put the results on its card.

    Args:
        repo_id: the model repository, ``owner/name``.
        revision: the commit to evaluate and to pin in the card (a branch or tag is resolved to its commit first).
            It replaces ``settings.revision``.
        settings: how to evaluate (the options of ``speat evaluate``).
        create_pr: open a pull request (or add to our open one); False commits to main (needs write access).
        force: open a new pull request even though the owner closed our last one unmerged.
        allow_synthetic: accept synthetic stimuli (``--stimuli demo``); the card then says so loudly.
        dry_run: push nothing; the outcome carries the diff.
        token: a Hub token; None uses huggingface_hub's usual sources (``HF_TOKEN``, the stored login).
        endpoint: the Hub's URL; None is ``HF_ENDPOINT``. The model itself is downloaded through transformers,
            which always uses ``HF_ENDPOINT``, so a different endpoint is refused.
        source: where the card tells readers to get speat (`speat_metric.hub.source`); the default links nothing.
        policy: the opt-out list and daily cap on new pull requests (`CampaignPolicy`); its ledger records what
            this annotation opened or found declined. None: no opt-out, no cap.

    Returns:
        The `AnnotationOutcome`: ``opened-pr``, ``updated-pr``, ``committed``, ``unchanged`` (nothing to change;
        no evaluation when the card already shows these settings at this revision), ``skipped-owner-closed`` (no
        evaluation), ``dry-run``, ``opted-out`` (no request to the repository) or ``deferred`` (no evaluation).

    Raises:
        ValueError: bad settings, synthetic stimuli without `allow_synthetic`, per-layer pooling without
            matplotlib, a card with invalid YAML or broken markers (`CardError`), a model that is not a speech
            encoder, or a Hub failure (`speat_metric.hub.hub.HubError`, one line, never the token); all but Hub
            failures after evaluation are raised before the model is loaded. A base model that cannot be evaluated
            raises nothing (the card says so).
    """
    _check_endpoint(endpoint)
    check_settings(settings, allow_synthetic=allow_synthetic)
    policy = policy or CampaignPolicy()
    if (opted_out := _opted_out(policy, repo_id, revision, force=force)) is not None:
        return opted_out
    client = HubClient(token=token, endpoint=endpoint)
    benchmark = load_benchmark(client, settings.benchmark) if settings.benchmark else None
    commit = client.head(repo_id, revision)
    settings = dataclasses.replace(settings, revision=commit)
    target = _find_target(client, repo_id, create_pr=create_pr, force=force)
    if target.declined is not None and target.pull_request is None:
        return _declined(policy, repo_id, commit, target.declined)
    fingerprint = settings_fingerprint(settings)
    # The base is named by the card at the evaluated commit (usually main's card, which `target` already read).
    evaluated_card = (target.readme if target.pull_request is None and commit == target.base_commit
                      else client.read_text(repo_id, README_PATH, revision=commit))
    base = find_base(client, repo_id, evaluated_card)
    if (shown := card_up_to_date(client, repo_id, target.readme, commit, fingerprint,
                                 base=base.key if base else None)) is not None:
        logger.info("%s: the card shows these settings at revision %s%s; nothing to evaluate", repo_id, shown,
                    "" if shown == commit else f" and only the card changed up to {commit}")
        return _outcome(repo_id, "dry-run" if dry_run else "unchanged", shown, target)
    if (deferred := _deferred(policy, repo_id, commit, target, create_pr=create_pr, dry_run=dry_run)) is not None:
        return deferred
    from speat_metric.evaluation import evaluate_models

    records = evaluate_models([repo_id], settings)
    if settings.layer_pooling.mode == "per-layer":  # the table's one result per test, from the cached embeddings
        records += evaluate_models([repo_id], headline_settings(settings))
    revisions = {record.model.revision for record in records}
    if revisions != {commit}:
        raise RuntimeError(f"{repo_id}: evaluated revision {commit}, but the records say {sorted(map(str, revisions))}")
    if base is not None:
        base = evaluate_base(repo_id, base, headline_settings(settings))
    content = render_card(records, repo_id=repo_id, allow_synthetic=allow_synthetic, settings_fingerprint=fingerprint,
                          source=source, benchmark=benchmark, base=base)
    return _push(client, repo_id, content, target, records, create_pr=create_pr, dry_run=dry_run, policy=policy)


def publish_records(repo_id: str, records: Sequence[EvaluationRecord], *, create_pr: bool = True, force: bool = False,
                    allow_synthetic: bool = False, dry_run: bool = False, token: str | None = None,
                    endpoint: str | None = None, source: SpeatSource = SpeatSource(),
                    benchmark: str | None = None, policy: CampaignPolicy | None = None) -> AnnotationOutcome:
    """Put existing records of a Hub model (``speat evaluate ORG/NAME`` output) on its card.

    Args:
        repo_id: the model repository; the records must be of this model, at one Hub revision, one per test.
        records: the records.
        create_pr, force, allow_synthetic, dry_run, token, endpoint, source, policy: as in `annotate_model`.
        benchmark: the SpEAT benchmark the results attach to (``.eval_results``); None writes none.

    Returns:
        The `AnnotationOutcome` (its ``evaluated_revision`` is the records' revision).

    Raises:
        ValueError: records of another model, of no Hub revision, several per test, synthetic without
            `allow_synthetic` (`CardError`); a card that cannot be merged; a Hub failure (`HubError`).
    """
    client = HubClient(token=token, endpoint=endpoint)
    content = render_card(records, repo_id=repo_id, allow_synthetic=allow_synthetic, source=source,
                          benchmark=load_benchmark(client, benchmark) if benchmark else None)
    names = {record.model.name for record in records}
    if names != {repo_id}:
        raise CardError(f"the records are of {', '.join(sorted(names))}, not of {repo_id!r}: annotate the model they "
                        "were computed for")
    if content.revision is None:
        raise CardError(f"the records of {repo_id!r} carry no Hub revision (a local copy?): evaluate the Hub model "
                        f"itself (speat evaluate {repo_id}) so that the card can pin the commit")
    policy = policy or CampaignPolicy()
    if (opted_out := _opted_out(policy, repo_id, content.revision, force=force)) is not None:
        return opted_out
    target = _find_target(client, repo_id, create_pr=create_pr, force=force)
    if target.declined is not None and target.pull_request is None:
        return _declined(policy, repo_id, content.revision, target.declined)
    if (deferred := _deferred(policy, repo_id, content.revision, target, create_pr=create_pr,
                              dry_run=dry_run)) is not None:
        return deferred
    return _push(client, repo_id, content, target, records, create_pr=create_pr, dry_run=dry_run, policy=policy)


def _check_endpoint(endpoint: str | None) -> None:
    from huggingface_hub import constants

    if endpoint is not None and endpoint.rstrip("/") != constants.ENDPOINT.rstrip("/"):
        raise ValueError(f"endpoint {endpoint!r} differs from HF_ENDPOINT ({constants.ENDPOINT!r}), which "
                         "transformers downloads the model from; set HF_ENDPOINT to it before starting instead")


def _opted_out(policy: CampaignPolicy, repo_id: str, revision: str, *, force: bool) -> AnnotationOutcome | None:
    """The outcome for a repository the policy says not to touch (before any request to it), else None."""
    reason = policy.skip_reason(repo_id, include_declined=not force)
    return None if reason is None else AnnotationOutcome(repo_id, "opted-out", revision, reason=reason)


def _declined(policy: CampaignPolicy, repo_id: str, revision: str, declined: PullRequest) -> AnnotationOutcome:
    """The owner closed our pull request: nothing is opened, and the policy remembers the repository as opted out."""
    policy.record(repo_id, "skipped-owner-closed", declined.url)
    return AnnotationOutcome(repo_id, "skipped-owner-closed", revision, pr_url=declined.url,
                             pr_number=declined.number)


def _deferred(policy: CampaignPolicy, repo_id: str, revision: str, target: _Target, *, create_pr: bool,
              dry_run: bool) -> AnnotationOutcome | None:
    """A model that would get a new pull request once today's cap is reached waits, before it is evaluated."""
    if create_pr and not dry_run and target.pull_request is None and not policy.claim_pr(repo_id):
        return AnnotationOutcome(repo_id, "deferred", revision, reason=policy.deferral_reason())
    return None


def _find_target(client: HubClient, repo_id: str, *, create_pr: bool, force: bool) -> _Target:
    """Look before writing: our open PR (its card), a PR the owner declined, else main's card; check the card."""
    base_commit = client.head(repo_id, "main")
    found = client.speat_pull_requests(repo_id) if create_pr else None
    pull_request = found.open if found else None
    declined = found.declined if found and not force else None
    if declined is not None and pull_request is None:
        return _Target(base_commit, None, declined, None, None)
    revision = pull_request.revision if pull_request else base_commit
    readme = client.read_text(repo_id, README_PATH, revision=revision)
    eval_file = client.read_text(repo_id, EVAL_RESULTS_PATH, revision=revision)
    try:
        check_card(readme or "")
    except CardError as error:
        where = f"pull request #{pull_request.number}" if pull_request else "main"
        raise CardError(f"{repo_id} ({where}): {error}") from None
    return _Target(base_commit, pull_request, declined, readme, eval_file)


def _outcome(repo_id: str, status: str, revision: str, target: _Target, **fields: object) -> AnnotationOutcome:
    pull_request = target.pull_request
    return AnnotationOutcome(repo_id, status, revision, pr_url=pull_request.url if pull_request else None,
                             pr_number=pull_request.number if pull_request else None, **fields)


def _push(client: HubClient, repo_id: str, content: CardContent, target: _Target,
          records: Sequence[EvaluationRecord], *, create_pr: bool, dry_run: bool, policy: CampaignPolicy
          ) -> AnnotationOutcome:
    """Merge, diff, and push what changed as one commit (or nothing); the policy counts a pull request opened."""
    revision = content.revision
    readme = merge_card(target.readme, content)
    files: dict[str, str | bytes] = {
        path: new for path, old, new in ((README_PATH, target.readme, readme),
                                         (EVAL_RESULTS_PATH, target.eval_file, content.eval_file))
        if new is not None and (old or "") != new}
    # Without a benchmark there is no .eval_results file: one we wrote before goes (it named no benchmark).
    delete = [EVAL_RESULTS_PATH] if content.eval_file is None and target.eval_file is not None else []
    diff = "".join(unified_diff(path, old, files[path])
                   for path, old in ((README_PATH, target.readme), (EVAL_RESULTS_PATH, target.eval_file))
                   if path in files)
    figure_change = _figure_change(client, repo_id, content, target)
    if figure_change == "deleted":  # our section no longer shows a figure: the one we committed goes with it
        delete.append(FIGURE_PATH)
    elif figure_change is not None:
        files[FIGURE_PATH] = content.figure
        diff += f"{figure_change} {FIGURE_PATH} (binary, {len(content.figure):,} bytes)\n"
    diff += "".join(f"deleted {path}\n" for path in delete)
    records = tuple(records)
    if dry_run:
        return _outcome(repo_id, "dry-run", revision, target, diff=diff, records=records)
    if not files and not delete:
        return _outcome(repo_id, "unchanged", revision, target, records=records)
    client.validate_card(readme)
    description = _description(content, opt_out_dataset=policy.opt_out.dataset)

    def update(pull_request: PullRequest) -> AnnotationOutcome:
        info = client.commit(repo_id, files, summary=f"{SPEAT_TITLE_PREFIX} Update SpEAT results to revision "
                             f"{revision[:12]}", description=description, revision=pull_request.revision,
                             delete=delete)
        return AnnotationOutcome(repo_id, "updated-pr", revision, pr_url=pull_request.url,
                                 pr_number=pull_request.number, commit=info.oid, records=records)

    if target.pull_request is not None:
        return update(target.pull_request)
    if create_pr:
        # Look again right before writing: another annotation of this repository (a batch, a webhook) may have
        # opened our pull request while this one was evaluating.
        concurrent = client.speat_pull_requests(repo_id).open
        if concurrent is not None:
            return update(concurrent)
        info = client.commit(repo_id, files, summary=PR_TITLE, description=description, create_pr=True,
                             parent_commit=target.base_commit, delete=delete)
        opened = client.speat_pull_requests(repo_id).all_open
        if opened and opened[0].number != info.pr_num:  # opened at the same moment as another: the oldest stays
            client.close_duplicate(repo_id, info.pr_num, opened[0].number)
            return update(opened[0])
        policy.record(repo_id, "opened-pr", info.pr_url)
        return AnnotationOutcome(repo_id, "opened-pr", revision, pr_url=info.pr_url, pr_number=info.pr_num,
                                 commit=info.oid, records=records)
    info = client.commit(repo_id, files, summary=f"{SPEAT_TITLE_PREFIX} Add SpEAT social-bias results (revision "
                         f"{revision[:12]})", description=description, parent_commit=target.base_commit,
                         delete=delete)
    return AnnotationOutcome(repo_id, "committed", revision, commit=info.oid, records=records)


def _figure_change(client: HubClient, repo_id: str, content: CardContent, target: _Target) -> str | None:
    """``added``, ``changed`` or ``deleted`` for the layer figure at `FIGURE_PATH`, or None when it is as it should
    be. Compared by the Hub's digest of the file (no download): the figure's bytes are deterministic, so an unchanged
    figure is not committed again. Looked up only when there is a figure to commit, or the card showed one."""
    if content.figure is None and FIGURE_PATH not in (target.readme or ""):
        return None
    where = target.pull_request.revision if target.pull_request else target.base_commit
    existing = client.file_digests(repo_id, [FIGURE_PATH], revision=where).get(FIGURE_PATH)
    if content.figure is None:
        return "deleted" if existing is not None else None
    if existing is None:
        return "added"
    return None if existing.matches(content.figure) else "changed"


def _description(content: CardContent, *, opt_out_dataset: str | None = None) -> str:
    """The pull request's (and commit's) body: what changes, and that it is automated and how to opt out."""
    warnings = [f"**Note: {label}.** These results are labelled as such in the card." for label in content.labels
                if label in ("synthetic-stimuli", "random-init")]
    table = [line for line in content.section.splitlines() if line.startswith("|")]
    return "\n".join([
        f"Speech Embedding Association Test (SpEAT) social-bias results of this model at revision "
        f"`{content.revision}`, added to its card:",
        "",
        "- a \"Social bias (SpEAT)\" section in README.md, between speat's markers;",
        *([f"- a figure of d per layer, `{FIGURE_PATH}`, that the section shows;"] if content.figure else []),
        *(["- this model's d against its base model's (Δd with a paired interval), in the section only;"]
          if content.comparisons else []),
        "- `model-index` results in README.md's metadata" + (";" if content.eval_file else "."),
        *([f"- `{EVAL_RESULTS_PATH}` (the Hub's evaluation-results format), attached to the SpEAT benchmark."]
          if content.eval_file else []),
        "" if content.eval_file else "(No `.eval_results`: the results were attached to no SpEAT benchmark.)",
        "",
        "Nothing else in the card changes.",
        "",
        *warnings,
        *(["", *table] if table else []),
        "",
        f"**This pull request is automated**: speat {__version__} ({SPEAT_COMMIT_MARKER}) opened it as part of a "
        "campaign over public speech models. SpEAT measures whether a speech model's embeddings associate one group "
        "of speakers (for example by gender, age or accent) more closely than another with pleasant rather than "
        "unpleasant speech.",
        "",
        "Running it again updates this pull request rather than opening another. **To opt out**, close this pull "
        "request. Closing it without merging declines: speat then opens no new pull request here (unless its "
        "operator forces one). To keep all your repositories out, ask the operator to add your account to their "
        "opt-out list" + (f", the Hub dataset `{opt_out_dataset}`." if opt_out_dataset else "."),
    ])
