"""Annotate many models, resumably: ``speat hub annotate-many (--models FILE | --search QUERY | --tier T) --state F``.

Models come from one selection (`select_models`): a list file (one Hub id per line; blank lines and ``#`` comments
ignored; ``--tier requested``), a Hub search (`find_speech_models`: the search's results that are speech encoders
speat reads, by their ``model_type`` tag), the most downloaded speech encoders (``--tier popular``), or the base
encoders of `BASE_ENCODERS` (``--tier base``). Each is annotated with `speat_metric.hub.annotate.annotate_model` at
its current main commit. The state file (JSON, rewritten atomically after every model) records each model's outcome,
revision and settings, so a batch that was killed resumes where it stopped: a model already annotated at its current
revision with the same settings is skipped, a model that failed or was deferred is tried again, and nothing is
annotated twice (and were a model's PR opened just before a kill, the re-run finds that PR and updates nothing: no
duplicate). A failure is recorded with its reason and the batch goes on; a progress bar follows the models and a
closing summary says what was done, skipped, deferred and failed, and why.

The campaign's manners (`speat_metric.hub.campaign_policy`): repositories on the operator's opt-out list, and those
whose owner closed one of our pull requests, are skipped without a request; once ``max_prs_per_day`` pull requests
were opened on a UTC day, models that would get a new one are left ``deferred`` for the next day's run. The state
file's ``policy`` holds the ledger that counts them across runs.

State file::

    {"version": 1, "models": {"org/name": {"status": "opened-pr", "revision": "<sha>", "settings": "<hash>",
                                           "pr_url": "...", "reason": null, "started": "...", "finished": "..."}},
     "policy": {"opened": {"2025-03-01": ["org/name"]}, "declined": {"org/other": {"pr_url": "...", "since": "..."}}}}

This module is the ``local`` backend and owns the state file; ``--backend jobs|slurm`` (`speat_metric.hub.campaign`)
adds the shards it runs as ``"campaign": {"shards": {...}}`` and writes the models' entries the same way
(`model_entry`, `save_state`), so either backend resumes the other's campaign.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from speat_metric.evaluation import EvaluationSettings
from speat_metric.files import atomic_write_text, check_writable_directory
from speat_metric.hub.annotate import (
    AnnotationOutcome,
    annotate_model,
    check_settings,
    one_line_reason,
    settings_fingerprint,
)
from speat_metric.hub.campaign_policy import CampaignPolicy, OptOutList, PolicyLedger, utc_now
from speat_metric.hub.hub import HubAuthError, HubClient
from speat_metric.hub.source import SpeatSource
from speat_metric.report import plural

STATE_VERSION = 1
DONE_STATUSES = ("opened-pr", "updated-pr", "committed", "unchanged", "skipped-owner-closed")
"""Outcomes after which a model needs nothing more at that revision (a dry run or a failure does)."""

_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")

TIERS = ("base", "popular", "requested")
"""Which models a campaign touches: the base encoders, the most downloaded speech encoders, or a list file."""

BASE_ENCODERS = (
    ("facebook/wav2vec2-base", "wav2vec2"), ("facebook/wav2vec2-large", "wav2vec2"),
    ("facebook/wav2vec2-large-lv60", "wav2vec2"), ("facebook/wav2vec2-large-xlsr-53", "wav2vec2"),
    ("facebook/wav2vec2-xls-r-300m", "wav2vec2"), ("facebook/wav2vec2-xls-r-1b", "wav2vec2"),
    ("facebook/wav2vec2-xls-r-2b", "wav2vec2"), ("facebook/mms-300m", "wav2vec2"), ("facebook/mms-1b", "wav2vec2"),
    ("facebook/hubert-base-ls960", "hubert"), ("facebook/hubert-large-ll60k", "hubert"),
    ("facebook/hubert-xlarge-ll60k", "hubert"),
    ("microsoft/wavlm-base", "wavlm"), ("microsoft/wavlm-base-plus", "wavlm"), ("microsoft/wavlm-large", "wavlm"),
    ("facebook/data2vec-audio-base", "data2vec-audio"), ("facebook/data2vec-audio-large", "data2vec-audio"),
    ("facebook/w2v-bert-2.0", "wav2vec2-bert"),
    ("openai/whisper-tiny", "whisper"), ("openai/whisper-base", "whisper"), ("openai/whisper-small", "whisper"),
    ("openai/whisper-medium", "whisper"), ("openai/whisper-large-v2", "whisper"),
    ("openai/whisper-large-v3", "whisper"),
)
"""The pretrained (not fine-tuned) speech encoders of their authors, with their ``model_type``: ``--tier base``
takes those whose type speat reads (w2v-BERT's ``wav2vec2-bert`` not yet)."""

POPULAR_LIMIT = 100
"""``--tier popular`` without ``--limit``: this many of the most downloaded speech encoders."""


@dataclass
class BatchSummary:
    """What `annotate_many` did, by model id."""

    done: dict[str, AnnotationOutcome] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why
    failed: dict[str, str] = field(default_factory=dict)  # model -> reason
    deferred: dict[str, str] = field(default_factory=dict)  # model -> why (the daily cap)
    declined: dict[str, str] = field(default_factory=dict)  # model -> the pull request its owner closed
    deferred_until: datetime | None = None  # when the deferred models can go

    def lines(self) -> list[str]:
        """The closing summary, for people."""
        deferred = f", {len(self.deferred)} deferred" if self.deferred else ""
        lines = [f"{plural(len(self.done), 'model')} done, {len(self.skipped)} skipped, {len(self.failed)} failed"
                 f"{deferred}"]
        lines += [f"  done     {outcome.summary}" for outcome in self.done.values()]
        lines += [f"  skipped  {model}: {why}" for model, why in self.skipped.items()]
        lines += [f"  FAILED   {model}: {reason}" for model, reason in self.failed.items()]
        lines += [f"  deferred {model}" for model in self.deferred]
        if self.deferred:
            lines.append(f"{plural(len(self.deferred), 'model')} deferred: {next(iter(self.deferred.values()))}; "
                         "run the same command then to take them (the state file remembers them)")
        lines += [f"opted out now: {model} (its owner closed {url}); later runs skip it"
                  for model, url in self.declined.items()]
        return lines


def read_model_list(path: Path) -> list[str]:
    """The model ids of a list file, in order, without duplicates.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a Hub model id (named with its line number).
    """
    if not path.is_file():
        raise FileNotFoundError(f"--models file {str(path)!r} does not exist")
    models = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        model = line.split("#", 1)[0].strip()
        if not model:
            continue
        if not _MODEL_ID.match(model):
            raise ValueError(f"{path}:{number}: {model!r} is not a Hub model id (OWNER/NAME)")
        if model not in models:
            models.append(model)
    if not models:
        raise ValueError(f"--models file {str(path)!r} lists no model")
    return models


def find_speech_models(client: HubClient, *, search: str | None, filters: Sequence[str] = (),
                       limit: int | None = None, by_downloads: bool = False) -> list[str]:
    """Hub search results that are speech encoders speat reads (their ``model_type`` is one speat supports).

    Args:
        search, filters, limit: the Hub search (`HubClient.search_models`).
        by_downloads: the most downloaded first. The Hub is then asked once per model type speat reads (each is a
            tag), so that `limit` counts speech encoders rather than search results, most of which would be text
            models.
    """
    from speat_metric.adapters.preflight import SUPPORTED_MODEL_TYPES

    if by_downloads:
        infos = {info.id: info for model_type in SUPPORTED_MODEL_TYPES
                 for info in client.search_models(search=search, filters=[model_type, *filters], limit=limit,
                                                   sort="downloads")}
        found = sorted(infos.values(), key=lambda info: -(info.downloads or 0))
    else:
        found = client.search_models(search=search, filters=filters, limit=limit)
    speech = []
    for info in found:
        model_type = (info.config or {}).get("model_type") if isinstance(info.config, dict) else None
        if model_type in SUPPORTED_MODEL_TYPES or set(info.tags or ()) & set(SUPPORTED_MODEL_TYPES):
            speech.append(info.id)
    return speech[:limit] if by_downloads and limit is not None else speech


def select_models(client: HubClient, *, tier: str | None = None, models_file: Path | None = None,
                  search: str | None = None, filters: Sequence[str] = (), limit: int | None = None) -> list[str]:
    """The models a campaign touches: the one place ``--tier``, ``--models``, ``--search``, ``--filter`` and
    ``--limit`` meet.

    Args:
        tier: ``requested`` (the list file: same as `models_file` alone), ``popular`` (the most downloaded speech
            encoders, narrowed by `search` and `filters`; `limit`, default `POPULAR_LIMIT`), ``base``
            (`BASE_ENCODERS` that speat reads, narrowed to ids containing `search`; at most `limit`), or None:
            the list file, else the Hub search in the Hub's order.
        models_file, search, filters, limit: ``--models``, ``--search``, ``--filter``, ``--limit``.

    Raises:
        ValueError: options that do not go together, a bad list file, or a selection that finds no model; all
            before any model is touched.
    """
    if tier is not None and tier not in TIERS:
        raise ValueError(f"--tier {tier!r} is not one of {', '.join(TIERS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be 1 or more, not {limit}")
    if tier == "requested" and models_file is None:
        raise ValueError("--tier requested takes the models of a list file: give --models FILE")
    if models_file is not None and tier not in (None, "requested"):
        raise ValueError(f"--models goes with --tier requested, not --tier {tier}")
    if models_file is not None:
        if search is not None or filters or limit is not None:
            raise ValueError("--search, --filter and --limit select from the Hub, not from --models")
        return read_model_list(models_file)
    if tier == "base":
        if filters:
            raise ValueError("--filter needs the Hub's search: use it with --search or --tier popular")
        from speat_metric.adapters.preflight import SUPPORTED_MODEL_TYPES

        models = [model for model, model_type in BASE_ENCODERS if model_type in SUPPORTED_MODEL_TYPES
                  and (search is None or search.lower() in model.lower())][:limit]
        if not models:
            raise ValueError(f"no base encoder's id contains {search!r}")
        return models
    if tier is None and search is None:
        raise ValueError("give the models: --models FILE, --search QUERY or --tier base|popular")
    popular = tier == "popular"
    models = find_speech_models(client, search=search, filters=filters, by_downloads=popular,
                                limit=limit or (POPULAR_LIMIT if popular else None))
    if not models:
        raise ValueError(f"the Hub search {search or '(all models)'!r} (filters: {', '.join(filters) or 'none'}) found "
                         "no speech encoder that speat reads")
    return models


def load_state(path: Path) -> dict[str, Any]:
    """The state file's content (a fresh state when the file does not exist).

    Raises:
        ValueError: a file that is not a batch state file.
    """
    if path.is_dir():
        raise ValueError(f"--state {str(path)!r} is a directory; give the path of a file (e.g. {path}/batch.json)")
    if not path.exists():
        check_writable_directory(path.parent, "--state", "the state file")
        return {"version": STATE_VERSION, "models": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"--state {str(path)!r} is not a batch state file (not JSON: {error}); give a new path or "
                         "delete it to start over") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("models"),
                                                                                                dict):
        raise ValueError(f"--state {str(path)!r} is not a speat batch state file (version {STATE_VERSION})")
    try:
        PolicyLedger.from_dict(state.get("policy") or {})
    except ValueError as error:
        raise ValueError(f"--state {str(path)!r}: {error}") from None
    return state


def annotate_many(models: Sequence[str], settings: EvaluationSettings, *, state_path: Path, create_pr: bool = True,
                  force: bool = False, allow_synthetic: bool = False, dry_run: bool = False,
                  token: str | None = None, endpoint: str | None = None, out: Path | None = None,
                  report: Callable[[str], None] = print, source: SpeatSource = SpeatSource(),
                  opt_out: OptOutList = OptOutList(), max_prs_per_day: int | None = None,
                  clock: Callable[[], datetime] = utc_now) -> BatchSummary:
    """Annotate each model at its current main commit, recording every outcome in the state file as it happens.

    Args:
        models: Hub model ids.
        settings: how to evaluate (its ``revision`` is ignored: each model is evaluated at its main commit).
        state_path: the state file (created, or resumed from).
        create_pr, force, allow_synthetic, dry_run, token, endpoint, source: as in `annotate_model`.
        out: a directory to write each model's records to (None: not kept).
        report: called with one line per model as it completes (under the progress bar).
        opt_out: repositories and owners to leave alone (`campaign_policy.load_opt_out`).
        max_prs_per_day: at most this many new pull requests per UTC day, counted across runs in the state file
            (None: no cap); the others are left ``deferred``.
        clock: the current time (the UTC day the cap counts in).

    Returns:
        The `BatchSummary`.

    Raises:
        ValueError: bad settings, cap or state file, found before any model is touched.
    """
    from speat_metric.progress import ProgressBar

    check_settings(settings, allow_synthetic=allow_synthetic)
    policy = CampaignPolicy(opt_out=opt_out, max_prs_per_day=max_prs_per_day, clock=clock)
    if out is not None:
        check_writable_directory(out, "--out", "the results")
    state = load_state(state_path)
    policy.ledger = PolicyLedger.from_dict(state.get("policy") or {})
    save_state(state_path, state, policy)  # fail now, not after the first model, if the state file cannot be written
    client = HubClient(token=token, endpoint=endpoint)
    summary = BatchSummary()
    with ProgressBar(len(models), unit="model", desc="annotating models", enabled=settings.progress) as bar:
        for model in models:
            _annotate_one(model, settings, state, summary, client=client, state_path=state_path, create_pr=create_pr,
                          force=force, allow_synthetic=allow_synthetic, dry_run=dry_run, token=token,
                          endpoint=endpoint, out=out, report=report, source=source, policy=policy)
            bar.advance()
    if summary.deferred:
        summary.deferred_until = policy.budget_resets_at()
    return summary


def skipped_by_policy(policy: CampaignPolicy, model: str, summary: BatchSummary, report: Callable[[str], None], *,
                      force: bool) -> bool:
    """Whether the opt-out list or an owner's closed pull request keeps `model` away (recorded in `summary` and
    reported), asked before any request to its repository."""
    reason = policy.skip_reason(model, include_declined=not force)
    if reason is not None:
        summary.skipped[model] = reason
        report(f"{model}: skipped, {reason}")
    return reason is not None


def _annotate_one(model: str, settings: EvaluationSettings, state: dict[str, Any], summary: BatchSummary, *,
                  client: HubClient, state_path: Path, out: Path | None, report: Callable[[str], None],
                  policy: CampaignPolicy, **options: Any) -> None:
    started = now_text()
    entry = state["models"].get(model) or {}
    if skipped_by_policy(policy, model, summary, report, force=options["force"]):
        return
    try:
        revision = client.head(model)
        fingerprint = settings_fingerprint(dataclasses.replace(settings, revision=revision))
        if is_done(entry, revision, fingerprint):
            summary.skipped[model] = f"already annotated at revision {revision[:12]} ({entry['status']})"
            report(f"{model}: skipped, {summary.skipped[model]}")
            return
        outcome = annotate_model(model, revision=revision, settings=settings, policy=policy, **options)
    except Exception as error:  # one model's failure is recorded and the batch goes on, unless the token is refused
        reason = one_line_reason(error)
        summary.failed[model] = reason
        state["models"][model] = {**entry, "status": "failed", "reason": reason, "started": started,
                                  "finished": now_text()}
        save_state(state_path, state, policy)
        if isinstance(error, HubAuthError):
            raise HubAuthError(f"{reason}; the batch stops at {model} (the state file lets it resume)") from None
        report(f"{model}: FAILED: {reason}")
        return
    if out is not None:
        for record in outcome.records:
            record.save(out)
    if outcome.status == "deferred":
        summary.deferred[model] = outcome.reason or "deferred"
    else:
        summary.done[model] = outcome
    if outcome.status == "skipped-owner-closed":
        summary.declined[model] = outcome.pr_url or "our pull request"
    state["models"][model] = model_entry(outcome.status, outcome.evaluated_revision, fingerprint,
                                         pr_url=outcome.pr_url, commit=outcome.commit, reason=outcome.reason,
                                         started=started)
    save_state(state_path, state, policy)
    report(outcome.summary)


def is_done(entry: dict[str, Any], revision: str, fingerprint: str) -> bool:
    """Whether a model's state entry says it needs nothing more at `revision` with these settings."""
    return (entry.get("status") in DONE_STATUSES and entry.get("revision") == revision
            and entry.get("settings") == fingerprint)


def model_entry(status: str, revision: str | None, fingerprint: str | None, *, pr_url: str | None = None,
                commit: str | None = None, reason: str | None = None, started: str | None = None) -> dict[str, Any]:
    """A model's entry in the state file (every backend writes the same)."""
    return {"status": status, "revision": revision, "settings": fingerprint, "pr_url": pr_url, "commit": commit,
            "reason": reason, "started": started, "finished": now_text()}


def save_state(path: Path, state: dict[str, Any], policy: CampaignPolicy) -> None:
    """Write the state with the policy's ledger, atomically (a kill leaves the old file or the new one)."""
    state["policy"] = policy.ledger.to_dict()
    try:
        atomic_write_text(path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        raise ValueError(f"--state {str(path)!r} cannot be written: {error.strerror or error}") from None


def now_text() -> str:
    """The current UTC time as the state file writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
