"""Campaigns on many machines: ``speat hub annotate-many --backend jobs|slurm`` (``local`` is `batch.annotate_many`).

The coordinator (`run_campaign`) does what only it can do, then hands the evaluations out:

1. it drops the models the opt-out list names (no request to them) and those whose state entry says they are done at
   their current main commit, and pins every other model to that commit (each shard annotates exactly it);
2. it splits them into shards of ``--shard-size``; each shard is one process (a Hugging Face Job, or a Slurm task
   through submitit) running `run_shard`: `annotate_model` over its models at their commits, pushing each model's
   records to the operator's results dataset (``--results-repo``) as soon as they exist, and printing one JSON line
   per model (`OUTCOME_PREFIX`) that the coordinator reads back from the Job's log (or the task's stdout);
3. it owns the daily cap on new pull requests: each shard gets a share of what is left of today's budget (never more
   in total), the shards' outcomes are merged into the state's ledger, and models a shard had to defer wait in the
   state for the next day; shards that left budget unused make room for another round the same day;
4. it follows the shards, and re-submits one that failed or was killed with the models it had not finished, at most
   ``--max-attempts`` times in all; the state file (rewritten atomically at every change) records each shard's
   models, budget and current Job, so a killed coordinator started again re-attaches to the Jobs still running and
   never re-runs a finished shard.

State file: `batch`'s (``version`` 1, ``models``, ``policy``), plus::

    "campaign": {"shards": {"s0001": {"models": [["org/name", "<sha>"], ...], "budget": 2, "status": "running",
                                      "jobs": ["<job id>", ...], "opened": 1, "reason": null}}}

The token never leaves the coordinator's machine except as a Job's secret (``HF_TOKEN``): not in a Job's env, its
command line, its log, a submitit pickle (Slurm tasks read it from their environment) or the state file.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from speat_metric.evaluation import EvaluationSettings
from speat_metric.hub.annotate import annotate_model, check_settings, one_line_reason, settings_fingerprint
from speat_metric.hub.batch import (
    DONE_STATUSES,
    BatchSummary,
    is_done,
    load_state,
    model_entry,
    now_text,
    save_state,
    skipped_by_policy,
)
from speat_metric.hub.campaign_policy import CampaignPolicy, OptOutList, PolicyLedger, utc_now
from speat_metric.hub.hub import HubAuthError, HubClient, HubError
from speat_metric.hub.jobs import JobRuntime, run_speat_job
from speat_metric.hub.source import SpeatSource
from speat_metric.pooling import LayerPooling

if TYPE_CHECKING:
    from huggingface_hub import HfApi

BACKENDS = ("local", "jobs", "slurm")
OUTCOME_PREFIX = "speat-shard-outcome "
"""Starts each machine-readable line a shard prints: ``speat-shard-outcome {"model": ..., "status": ...}``."""

DEFAULT_SHARD_SIZE = 10
DEFAULT_MAX_ATTEMPTS = 3
_MACHINE_SETTINGS = ("device", "cache_dir", "stimulus_cache_dir", "revision", "progress")
"""Settings of the coordinator's machine that a shard does not take (it runs elsewhere, at a pinned commit)."""


# --- what one shard does --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardTask:
    """One shard's work, as the command line of its process carries it (JSON; no secret).

    Attributes:
        models: (model id, commit) pairs, annotated in this order at these commits.
        settings: how to evaluate (`settings_to_dict`).
        pr_budget: at most this many new pull requests (None: no cap).
        results_repo: the results dataset each model's records are pushed to (None: not pushed).
        opt_out_dataset: the Hub opt-out dataset pull requests name (the coordinator already applied the list).
        source: where cards tell readers to get speat (`SpeatSource` fields).
    """

    models: tuple[tuple[str, str], ...]
    settings: dict[str, Any]
    pr_budget: int | None = None
    create_pr: bool = True
    force: bool = False
    allow_synthetic: bool = False
    results_repo: str | None = None
    opt_out_dataset: str | None = None
    source: dict[str, str | None] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ShardTask:
        """Raises ValueError for text that is not a shard task."""
        try:
            data = json.loads(text)
            return cls(**{**data, "models": tuple((str(model), str(commit)) for model, commit in data["models"])})
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as error:
            raise ValueError(f"--shard is not a shard task ({error})") from None


def settings_to_dict(settings: EvaluationSettings) -> dict[str, Any]:
    """The settings a shard evaluates with, as JSON values (the coordinator machine's own paths left out)."""
    values = {name.name: getattr(settings, name.name) for name in dataclasses.fields(settings)
              if name.name not in _MACHINE_SETTINGS}
    values["layer_pooling"] = [settings.layer_pooling.mode, settings.layer_pooling.layer]
    values["tests"] = list(settings.tests)
    return values


def settings_from_dict(values: Mapping[str, Any]) -> EvaluationSettings:
    mode, layer = values["layer_pooling"]
    return EvaluationSettings(**{**values, "tests": tuple(values["tests"]), "layer_pooling": LayerPooling(mode, layer),
                                 "progress": False})


def run_shard(task: ShardTask, *, token: str | None = None, endpoint: str | None = None,
              emit: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Annotate a shard's models at their commits; print (`emit`) and return one outcome per model.

    A model's failure is its outcome and the shard goes on; a refused token ends the shard (every model would fail).
    The shard's own policy caps its new pull requests at ``task.pr_budget`` for its whole run.
    """
    emit = emit or (lambda line: print(line, flush=True))
    settings = settings_from_dict(task.settings)
    started = utc_now()
    opt_out = OptOutList(dataset=task.opt_out_dataset, source=f"datasets/{task.opt_out_dataset}"
                         ) if task.opt_out_dataset else OptOutList()
    # A fixed clock: the budget is the shard's for its whole run, even across midnight.
    policy = CampaignPolicy(opt_out=opt_out, max_prs_per_day=task.pr_budget, clock=lambda: started)
    source = SpeatSource(**task.source)
    outcomes = []
    for model, commit in task.models:
        began = time.monotonic()
        try:
            outcome = annotate_model(model, revision=commit, settings=settings, create_pr=task.create_pr,
                                     force=task.force, allow_synthetic=task.allow_synthetic, token=token,
                                     endpoint=endpoint, source=source, policy=policy)
            if task.results_repo and outcome.records:
                _push_records(outcome.records, task.results_repo, source=source, token=token, endpoint=endpoint)
            line = {"model": model, "status": outcome.status, "revision": outcome.evaluated_revision,
                    "pr_url": outcome.pr_url, "commit": outcome.commit, "reason": outcome.reason}
        except Exception as error:  # recorded as this model's outcome; the shard goes on
            line = {"model": model, "status": "failed", "revision": commit, "reason": one_line_reason(error)}
            if isinstance(error, HubAuthError):
                emit(OUTCOME_PREFIX + json.dumps({**line, "seconds": time.monotonic() - began}))
                raise
        line["seconds"] = round(time.monotonic() - began, 3)
        emit(OUTCOME_PREFIX + json.dumps(line))
        outcomes.append(line)
    return outcomes


def _push_records(records: Sequence[Any], repo_id: str, *, source: SpeatSource, token: str | None,
                  endpoint: str | None, attempts: int = 6) -> None:
    """push-results, retried: parallel shards commit to one dataset, and a commit on a stale parent is refused."""
    from speat_metric.hub.results_dataset import push_results

    for attempt in range(attempts):
        try:
            push_results(records, repo_id, source=source, token=token, endpoint=endpoint)
            return
        except HubError:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))


def parse_outcomes(lines: Sequence[str]) -> list[dict[str, Any]]:
    """The outcome lines of a shard's log (other lines, and a line cut short by a kill, are ignored)."""
    outcomes = []
    for line in lines:
        _, marker, payload = line.partition(OUTCOME_PREFIX)
        if not marker:
            continue
        try:
            outcome = json.loads(payload)
        except json.JSONDecodeError:
            continue
        if isinstance(outcome, dict) and isinstance(outcome.get("model"), str):
            outcomes.append(outcome)
    return outcomes


# --- where shards run -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardStatus:
    """A shard process as its engine reports it."""

    finished: bool
    succeeded: bool = False
    message: str | None = None


class ShardBackend(Protocol):
    """An engine that runs shard processes (`JobsBackend`, `SlurmBackend`)."""

    name: str

    def check(self) -> None:
        """Raise ValueError when the engine cannot be used (before any shard starts)."""

    def submit(self, shards: Sequence[tuple[str, ShardTask]]) -> list[str]:
        """Start the shards; return each one's handle (a Job id), in order."""

    def find(self, shard_id: str) -> str | None:
        """The handle of a shard started before the coordinator could record it, if the engine can tell."""

    def status(self, handle: str) -> ShardStatus:
        """Where the shard process is."""

    def outcomes(self, handle: str) -> list[dict[str, Any]]:
        """The outcomes the shard reported (also of a killed one, up to its kill)."""


class JobsBackend:
    """Shards as Hugging Face Jobs (`speat_metric.hub.jobs`): the token goes in each Job's secrets only.

    Args:
        api: an `HfApi` for the Hub (and its Jobs).
        runtime: the image, flavor, timeout, namespace and stimulus dataset of every Job.
        token: the token the Jobs get as their ``HF_TOKEN`` secret.
        campaign: a label value that tells this campaign's Jobs from others (the state file's name by default).
    """

    name = "jobs"

    def __init__(self, api: HfApi, runtime: JobRuntime, *, token: str, campaign: str) -> None:
        self.api, self.runtime, self.token, self.campaign = api, runtime, token, campaign

    def check(self) -> None:
        if not self.token:
            raise ValueError("--backend jobs needs a Hub token (HF_TOKEN or `hf auth login`): each Job gets it as its "
                             "HF_TOKEN secret")
        if self.runtime.namespace is None:
            self.runtime = dataclasses.replace(self.runtime, namespace=HubClient(token=self.token,
                                                                                 endpoint=self.api.endpoint).user())

    def submit(self, shards: Sequence[tuple[str, ShardTask]]) -> list[str]:
        handles = []
        for shard_id, task in shards:
            info = run_speat_job(self.api, self.runtime, ["hub", "annotate-many", "--shard", task.to_json()],
                                 token=self.token, labels={"speat-campaign": self.campaign, "speat-shard": shard_id})
            handles.append(info.id)
        return handles

    def find(self, shard_id: str) -> str | None:
        jobs = self.api.list_jobs(namespace=self.runtime.namespace,
                                  labels={"speat-campaign": self.campaign, "speat-shard": shard_id})
        return max(jobs, key=lambda job: job.created_at).id if jobs else None

    def status(self, handle: str) -> ShardStatus:
        stage_info = self.api.inspect_job(job_id=handle, namespace=self.runtime.namespace).status
        stage = str(stage_info.stage)
        if stage in ("RUNNING", "UPDATING", "PENDING", "SCHEDULING"):
            return ShardStatus(False)
        return ShardStatus(True, stage == "COMPLETED", f"Job {handle} {stage.lower()}"
                           + (f": {stage_info.message}" if stage_info.message else ""))

    def outcomes(self, handle: str) -> list[dict[str, Any]]:
        return parse_outcomes(list(self.api.fetch_job_logs(job_id=handle, namespace=self.runtime.namespace)))


def _run_shard_task(task_json: str) -> list[dict[str, Any]]:
    """A Slurm task: one shard (the token comes from the task's environment, never from its pickle)."""
    return run_shard(ShardTask.from_json(task_json))


class SlurmBackend:
    """Shards as Slurm array tasks through submitit's `AutoExecutor` (``cluster="local"`` runs them locally).

    Args:
        folder: where submitit keeps its pickles and logs (and the handles point to).
        cluster: submitit's cluster (None: Slurm when there is one, else local).
        parameters: `AutoExecutor.update_parameters` keywords (``slurm_partition``, ``timeout_min``, ...).
    """

    name = "slurm"

    def __init__(self, folder: Path, *, cluster: str | None = None, parameters: Mapping[str, Any] | None = None
                 ) -> None:
        self.folder, self.cluster, self.parameters = Path(folder), cluster, dict(parameters or {})
        self._jobs: dict[str, Any] = {}

    def check(self) -> None:
        try:
            import submitit  # noqa: F401
        except ModuleNotFoundError:
            raise ValueError("--backend slurm needs submitit: pip install 'speat[hub]'") from None
        self._executor()

    def _executor(self) -> Any:
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        executor.update_parameters(**self.parameters)
        return executor

    def submit(self, shards: Sequence[tuple[str, ShardTask]]) -> list[str]:
        jobs = self._executor().map_array(_run_shard_task, [task.to_json() for _, task in shards])  # one array job
        for job in jobs:
            self._jobs[job.job_id] = job
        return [job.job_id for job in jobs]

    def find(self, shard_id: str) -> str | None:
        return None  # submitit names no task by a label of ours: the shard is submitted again

    def _job(self, handle: str) -> Any:
        if handle not in self._jobs:  # a coordinator started again: re-attach by id
            executor = self._executor()
            self._jobs[handle] = executor._executor.job_class(folder=self.folder, job_id=handle)
        return self._jobs[handle]

    def status(self, handle: str) -> ShardStatus:
        job = self._job(handle)
        if not job.done():
            return ShardStatus(False)
        error = job.exception()
        return ShardStatus(True, error is None, None if error is None else
                           f"task {handle} failed: {one_line_reason(error).splitlines()[-1]}")

    def outcomes(self, handle: str) -> list[dict[str, Any]]:
        return parse_outcomes((self._job(handle).stdout() or "").splitlines())


# --- the coordinator ------------------------------------------------------------------------------------------------

def check_campaign_options(*, shard_size: int, max_attempts: int, poll_interval: float) -> None:
    """Raise ValueError (one line naming the value) for options no campaign can run with."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"--shard-size must be 1 or more, not {shard_size!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"--max-attempts must be 1 or more, not {max_attempts!r}")
    if not poll_interval > 0:
        raise ValueError(f"--poll-interval must be positive, not {poll_interval!r}")


def budget_shares(remaining: int | None, shards: int) -> list[int | None]:
    """Today's remaining budget of new pull requests, split among `shards` (None: no cap).

    Example:
        >>> budget_shares(5, 3), budget_shares(1, 3), budget_shares(None, 2)
        ([2, 2, 1], [1, 0, 0], [None, None])
    """
    if remaining is None:
        return [None] * shards
    return [remaining // shards + (1 if number < remaining % shards else 0) for number in range(shards)]


def run_campaign(models: Sequence[str], settings: EvaluationSettings, backend: ShardBackend, *, state_path: Path,
                 shard_size: int = DEFAULT_SHARD_SIZE, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 create_pr: bool = True, force: bool = False, allow_synthetic: bool = False,
                 results_repo: str | None = None, token: str | None = None, endpoint: str | None = None,
                 source: SpeatSource = SpeatSource(), opt_out: OptOutList = OptOutList(),
                 max_prs_per_day: int | None = None, clock: Callable[[], datetime] = utc_now,
                 poll_interval: float = 10.0, report: Callable[[str], None] = print) -> BatchSummary:
    """Annotate `models` in shards on `backend`, following them to the end (see the module's docstring).

    Args:
        models: Hub model ids.
        settings: how to evaluate (its revision is ignored: each model is pinned to its main commit).
        backend: where shards run.
        state_path: the state file (created, or resumed from: running shards are re-attached, finished ones kept).
        shard_size: models per shard.
        max_attempts: runs of one shard at most (the first included) before its unfinished models are failed.
        create_pr, force, allow_synthetic, token, endpoint, source: as in `annotate_model`.
        results_repo: the operator's results dataset each shard pushes records to (None: records are not kept).
        opt_out, max_prs_per_day, clock: as in `batch.annotate_many`; the coordinator owns the budget.
        poll_interval: seconds between looks at the running shards.
        report: called with one line per event (a shard started, a model done, a shard re-submitted).

    Raises:
        ValueError: bad options, settings, state file or engine, before any shard starts.
    """
    check_campaign_options(shard_size=shard_size, max_attempts=max_attempts, poll_interval=poll_interval)
    check_settings(settings, allow_synthetic=allow_synthetic)
    if results_repo is not None:
        from speat_metric.repo_ids import check_repo_id

        check_repo_id(results_repo, "--results-repo")
    policy = CampaignPolicy(opt_out=opt_out, max_prs_per_day=max_prs_per_day, clock=clock)
    backend.check()
    state = load_state(state_path)
    policy.ledger = PolicyLedger.from_dict(state.get("policy") or {})
    shards: dict[str, dict[str, Any]] = state.setdefault("campaign", {}).setdefault("shards", {})
    save_state(state_path, state, policy)  # fail now if the state file cannot be written
    client = HubClient(token=token, endpoint=endpoint)
    summary = BatchSummary()
    template = ShardTask(models=(), settings=settings_to_dict(settings), create_pr=create_pr, force=force,
                         allow_synthetic=allow_synthetic, results_repo=results_repo,
                         opt_out_dataset=opt_out.dataset, source=dataclasses.asdict(source))
    fingerprints: dict[str, str] = {}

    def fingerprint(commit: str) -> str:
        if commit not in fingerprints:
            fingerprints[commit] = settings_fingerprint(dataclasses.replace(settings, revision=commit))
        return fingerprints[commit]

    def save() -> None:
        save_state(state_path, state, policy)

    def merge(shard: dict[str, Any], outcome: dict[str, Any]) -> None:
        """One model's outcome into the state, the ledger and the summary (once: a repeated line is ignored)."""
        model = outcome["model"]
        if model in shard.setdefault("finished", []):
            return
        shard["finished"].append(model)
        status, revision = outcome["status"], outcome.get("revision")
        reason = policy.deferral_reason() if status == "deferred" else outcome.get("reason")
        if model not in shard.get("counted", []):  # not already counted as opened by a killed run (`in_flight`)
            shard["opened"] = shard.get("opened", 0) + (status == "opened-pr")
            policy.record(model, status, outcome.get("pr_url"))
        state["models"][model] = model_entry(status, revision, fingerprint(revision) if revision else None,
                                             pr_url=outcome.get("pr_url"), commit=outcome.get("commit"),
                                             reason=reason, started=shard.get("started"))
        if status == "failed":
            summary.failed[model] = reason or "failed"
            summary.done.pop(model, None)
            report(f"{model}: FAILED: {reason}")
            return
        summary.deferred.pop(model, None)
        if status == "deferred":
            summary.deferred[model] = reason
        elif status == "opted-out":
            summary.skipped[model] = reason or "opted out"
        else:
            from speat_metric.hub.annotate import AnnotationOutcome

            done = AnnotationOutcome(model, status, revision or "", pr_url=outcome.get("pr_url"),
                                     commit=outcome.get("commit"), reason=outcome.get("reason"))
            summary.done[model] = done
            if status == "skipped-owner-closed":
                summary.declined[model] = outcome.get("pr_url") or "our pull request"
        report(f"{model}: {status}" + (f" {outcome['pr_url']}" if outcome.get("pr_url") else ""))

    def in_flight(shard: dict[str, Any], model: str) -> None:
        """A shard killed while annotating `model` may have opened its pull request without reporting it: an open
        speat pull request there that the state did not know of counts as opened today, so the cap holds."""
        if max_prs_per_day is None or (state["models"].get(model) or {}).get("pr_url"):
            return
        try:
            found = client.speat_pull_requests(model).open
        except HubError:
            return
        if found is not None:
            policy.record(model, "opened-pr", found.url)
            shard["opened"] = shard.get("opened", 0) + 1
            shard.setdefault("counted", []).append(model)
            save()

    def active() -> dict[str, dict[str, Any]]:
        return {shard_id: shard for shard_id, shard in shards.items() if shard["status"] in ("submitting", "running")}

    def start(new: list[tuple[str, dict[str, Any]]]) -> None:
        """Record the shards first (a coordinator killed while submitting finds them by label), then submit."""
        for shard_id, shard in new:
            shard.update(status="submitting", started=shard.get("started") or now_text())
            shards[shard_id] = shard
        save()
        tasks = [(shard_id, dataclasses.replace(template, models=tuple(tuple(pair) for pair in unfinished(shard)),
                                                pr_budget=remaining_budget(shard))) for shard_id, shard in new]
        for (shard_id, shard), handle in zip(new, backend.submit(tasks)):
            shard["jobs"] = [*shard.get("jobs", []), handle]
            shard["status"] = "running"
            report(f"shard {shard_id}: {len(unfinished(shard))} models, budget "
                   f"{'unlimited' if shard['budget'] is None else shard['budget']}, {backend.name} {handle} "
                   f"(attempt {len(shard['jobs'])} of {max_attempts})")
        save()

    def unfinished(shard: dict[str, Any]) -> list[list[str]]:
        return [pair for pair in shard["models"] if pair[0] not in shard.get("finished", [])]

    def remaining_budget(shard: dict[str, Any]) -> int | None:
        return None if shard["budget"] is None else max(shard["budget"] - shard.get("opened", 0), 0)

    # A coordinator started again: shards recorded while being submitted are found by label, or submitted again.
    for shard_id, shard in active().items():
        if shard["status"] == "submitting":
            handle = backend.find(shard_id)
            if handle is None or handle in shard.get("jobs", []):  # never started: its last run is an older one
                start([(shard_id, shard)])
                continue
            shard.update(status="running", jobs=[*shard.get("jobs", []), handle])
            save()
        report(f"shard {shard_id}: re-attached to {backend.name} {shard['jobs'][-1]}")

    # Rounds: the shards of a round run in parallel; a later round takes the models a shard deferred while the
    # day's budget was not spent by the others (a shard's unused share comes back when it ends).
    while True:
        _follow(active(), backend, merge, save, start, unfinished, in_flight, max_attempts=max_attempts,
                poll_interval=poll_interval, report=report)
        pending = _pending(models, state, policy, client, summary, fingerprint, force=force, report=report)
        if not pending:
            break
        remaining = None if max_prs_per_day is None else max(max_prs_per_day - policy.opened_today(), 0)
        batches = [pending[index:index + shard_size] for index in range(0, len(pending), shard_size)]
        number = len(shards)
        start([(f"s{number + offset + 1:04d}", {"models": [list(pair) for pair in batch], "budget": share})
               for offset, (batch, share) in enumerate(zip(batches, budget_shares(remaining, len(batches))))])
    if summary.deferred:
        summary.deferred_until = policy.budget_resets_at()
    save()
    return summary


def _pending(models: Sequence[str], state: dict[str, Any], policy: CampaignPolicy, client: HubClient,
             summary: BatchSummary, fingerprint: Callable[[str], str], *, force: bool,
             report: Callable[[str], None]) -> list[tuple[str, str]]:
    """The models a new round's shards take, pinned to their main commits (opted-out, done, failed ones and those
    waiting for the next day left out)."""
    pending = []
    for model in models:
        if model in summary.done or model in summary.failed or model in summary.skipped:
            continue
        entry = state["models"].get(model) or {}
        if (model in summary.deferred or entry.get("status") == "deferred") and not policy.may_open_pr():
            summary.deferred[model] = policy.deferral_reason()  # no budget today: not even a look
            continue
        if skipped_by_policy(policy, model, summary, report, force=force):
            continue
        try:
            commit = client.head(model)
        except HubError as error:
            if isinstance(error, HubAuthError):
                raise
            summary.failed[model] = one_line_reason(error)
            state["models"][model] = model_entry("failed", None, None, reason=summary.failed[model])
            report(f"{model}: FAILED: {summary.failed[model]}")
            continue
        if is_done(entry, commit, fingerprint(commit)):
            summary.skipped[model] = f"already annotated at revision {commit[:12]} ({entry['status']})"
            continue
        pending.append((model, commit))
    return pending


def _follow(running: dict[str, dict[str, Any]], backend: ShardBackend, merge: Callable, save: Callable[[], None],
            start: Callable, unfinished: Callable, in_flight: Callable, *, max_attempts: int, poll_interval: float,
            report: Callable[[str], None]) -> None:
    """Wait for the running shards; merge each finished one's outcomes; re-submit (bounded) those that failed."""
    running = dict(running)
    while running:
        time.sleep(poll_interval)
        for shard_id, shard in list(running.items()):
            handle = shard["jobs"][-1]
            status = backend.status(handle)
            if not status.finished:
                continue
            for outcome in backend.outcomes(handle):
                if outcome["model"] in {pair[0] for pair in shard["models"]}:
                    merge(shard, outcome)
            del running[shard_id]
            left = unfinished(shard)
            if not left:
                shard.update(status="done", reason=None)
                save()
                continue
            reason = status.message or f"{backend.name} {handle} ended"
            in_flight(shard, left[0][0])
            if len(shard["jobs"]) < max_attempts:
                report(f"shard {shard_id}: {reason}; {len(left)} models left: submitting it again")
                shard["reason"] = reason
                start([(shard_id, shard)])
                running[shard_id] = shard
                continue
            shard.update(status="failed", reason=reason)
            for model, commit in left:
                merge(shard, {"model": model, "status": "failed", "revision": commit,
                              "reason": f"its shard {shard_id} ended {len(shard['jobs'])} times ({reason})"})
            save()


def write_shard_outcomes(task_json: str) -> int:
    """``speat hub annotate-many --shard TASK``: run one shard here (what a Job runs); 1 when a model failed."""
    outcomes = run_shard(ShardTask.from_json(task_json))
    return 1 if any(outcome["status"] not in (*DONE_STATUSES, "deferred", "opted-out", "dry-run")
                    for outcome in outcomes) else 0


__all__ = ["BACKENDS", "OUTCOME_PREFIX", "JobsBackend", "ShardTask", "SlurmBackend", "budget_shares",
           "check_campaign_options", "parse_outcomes", "run_campaign", "run_shard", "settings_from_dict",
           "settings_to_dict", "write_shard_outcomes"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(write_shard_outcomes(sys.argv[1]))
