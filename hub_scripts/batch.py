"""Annotate many models, resumably: ``speat hub annotate-many (--models FILE | --search QUERY) --state FILE``.

Models come from a list file (one Hub id per line; blank lines and ``#`` comments ignored) or a Hub search
(`find_speech_models`: the search's results that are speech encoders speat reads, by their ``model_type`` tag).
Each is annotated with `speat_metric.hub.annotate.annotate_model` at its current main commit. The state file (JSON,
rewritten atomically after every model) records each model's outcome, revision and settings, so a batch that was
killed resumes where it stopped: a model already annotated at its current revision with the same settings is
skipped, a model that failed is tried again, and nothing is annotated twice (and were a model's PR opened just
before a kill, the re-run finds that PR and updates nothing: no duplicate). A failure is recorded with its reason
and the batch goes on; a progress bar follows the models and a closing summary says what was done, skipped and
failed, and why.

State file::

    {"version": 1, "models": {"org/name": {"status": "opened-pr", "revision": "<sha>", "settings": "<hash>",
                                           "pr_url": "...", "reason": null, "started": "...", "finished": "..."}}}
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
from speat_metric.hub.annotate import AnnotationOutcome, annotate_model, check_settings, settings_fingerprint
from speat_metric.hub.hub import HubAuthError, HubClient
from speat_metric.hub.source import SpeatSource
from speat_metric.report import plural

STATE_VERSION = 1
DONE_STATUSES = ("opened-pr", "updated-pr", "committed", "unchanged", "skipped-owner-closed")
"""Outcomes after which a model needs nothing more at that revision (a dry run or a failure does)."""

_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass
class BatchSummary:
    """What `annotate_many` did, by model id."""

    done: dict[str, AnnotationOutcome] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why
    failed: dict[str, str] = field(default_factory=dict)  # model -> reason

    def lines(self) -> list[str]:
        """The closing summary, for people."""
        lines = [f"{plural(len(self.done), 'model')} done, {len(self.skipped)} skipped, {len(self.failed)} failed"]
        lines += [f"  done     {outcome.summary}" for outcome in self.done.values()]
        lines += [f"  skipped  {model}: {why}" for model, why in self.skipped.items()]
        lines += [f"  FAILED   {model}: {reason}" for model, reason in self.failed.items()]
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
                       limit: int | None = None) -> list[str]:
    """Hub search results that are speech encoders speat reads (their ``model_type`` is one speat supports)."""
    from speat_metric.adapters.preflight import SUPPORTED_MODEL_TYPES

    found = []
    for info in client.search_models(search=search, filters=filters, limit=limit):
        model_type = (info.config or {}).get("model_type") if isinstance(info.config, dict) else None
        if model_type in SUPPORTED_MODEL_TYPES or set(info.tags or ()) & set(SUPPORTED_MODEL_TYPES):
            found.append(info.id)
    return found


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
    return state


def annotate_many(models: Sequence[str], settings: EvaluationSettings, *, state_path: Path, create_pr: bool = True,
                  force: bool = False, allow_synthetic: bool = False, dry_run: bool = False,
                  token: str | None = None, endpoint: str | None = None, out: Path | None = None,
                  report: Callable[[str], None] = print, source: SpeatSource = SpeatSource()) -> BatchSummary:
    """Annotate each model at its current main commit, recording every outcome in the state file as it happens.

    Args:
        models: Hub model ids.
        settings: how to evaluate (its ``revision`` is ignored: each model is evaluated at its main commit).
        state_path: the state file (created, or resumed from).
        create_pr, force, allow_synthetic, dry_run, token, endpoint, source: as in `annotate_model`.
        out: a directory to write each model's records to (None: not kept).
        report: called with one line per model as it completes (under the progress bar).

    Returns:
        The `BatchSummary`.

    Raises:
        ValueError: bad settings or state file, found before any model is touched.
    """
    from speat_metric.progress import ProgressBar

    check_settings(settings, allow_synthetic=allow_synthetic)
    if out is not None:
        check_writable_directory(out, "--out", "the results")
    state = load_state(state_path)
    _save(state_path, state)  # fail now, not after the first model, if the state file cannot be written
    client = HubClient(token=token, endpoint=endpoint)
    summary = BatchSummary()
    with ProgressBar(len(models), unit="model", desc="annotating models", enabled=settings.progress) as bar:
        for model in models:
            _annotate_one(model, settings, state, summary, client=client, state_path=state_path, create_pr=create_pr,
                          force=force, allow_synthetic=allow_synthetic, dry_run=dry_run, token=token,
                          endpoint=endpoint, out=out, report=report, source=source)
            bar.advance()
    return summary


def _annotate_one(model: str, settings: EvaluationSettings, state: dict[str, Any], summary: BatchSummary, *,
                  client: HubClient, state_path: Path, out: Path | None, report: Callable[[str], None],
                  **options: Any) -> None:
    started = _now()
    entry = state["models"].get(model) or {}
    try:
        revision = client.head(model)
        fingerprint = settings_fingerprint(dataclasses.replace(settings, revision=revision))
        if (entry.get("status") in DONE_STATUSES and entry.get("revision") == revision
                and entry.get("settings") == fingerprint):
            summary.skipped[model] = f"already annotated at revision {revision[:12]} ({entry['status']})"
            report(f"{model}: skipped, {summary.skipped[model]}")
            return
        outcome = annotate_model(model, revision=revision, settings=settings, **options)
    except Exception as error:  # one model's failure is recorded and the batch goes on, unless the token is refused
        reason = _one_line(error)
        summary.failed[model] = reason
        state["models"][model] = {**entry, "status": "failed", "reason": reason, "started": started,
                                  "finished": _now()}
        _save(state_path, state)
        if isinstance(error, HubAuthError):
            raise HubAuthError(f"{reason}; the batch stops at {model} (the state file lets it resume)") from None
        report(f"{model}: FAILED: {reason}")
        return
    if out is not None:
        for record in outcome.records:
            record.save(out)
    summary.done[model] = outcome
    state["models"][model] = {"status": outcome.status, "revision": outcome.evaluated_revision,
                              "settings": fingerprint, "pr_url": outcome.pr_url, "commit": outcome.commit,
                              "reason": None, "started": started, "finished": _now()}
    _save(state_path, state)
    report(outcome.summary)


def _save(path: Path, state: dict[str, Any]) -> None:
    try:
        atomic_write_text(path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        raise ValueError(f"--state {str(path)!r} cannot be written: {error.strerror or error}") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(error, (ValueError, FileNotFoundError)) else f"{type(error).__name__}: {first}"
