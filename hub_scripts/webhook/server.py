"""The HTTP service: a FastAPI app under uvicorn that acknowledges Hub webhook events and queues them (docs/webhook.md
lists the answers). Nothing slow runs in a request; at start the service reconciles in a background thread while it
already serves."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from speat_metric.hub.campaign_policy import CampaignPolicy
from speat_metric.hub.json_logs import log_event
from speat_metric.hub.source import SpeatSource
from speat_metric.hub.webhook.work import Annotator, Deferred, Screener, WorkQueue
from speat_metric.hub.webhook_events import IgnoredEvent, PayloadError, WorkItem, event_to_work, screen_commit
from speat_metric.hub.webhooks import SECRET_HEADER, WEBHOOK_PATH, WebhookSecret

if TYPE_CHECKING:
    from speat_metric.evaluation import EvaluationSettings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # Hub payloads are a few kB
STATUS_LIST_LENGTH = 10
OUTCOME_FIELDS = ("status", "pr_url", "pr_number", "commit", "evaluated_revision")


@dataclass
class ServiceConfig:
    """Where the service listens (port 0: any free one), how it evaluates, its workers and retries, the Hub (None:
    ``HF_ENDPOINT``), whether it reconciles at start and what (`watched` ``KIND:NAME`` items; none: the token's
    account), how long a stopping service waits for running jobs, strings no reason shows (`redact`), and its manners
    (`policy`: the opt-out list, whose repositories get no request at all, and the daily cap on new pull requests)."""

    secret: WebhookSecret
    settings: EvaluationSettings | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    workers: int = 1
    allow_synthetic: bool = False
    max_attempts: int = 3
    retry_delay: float = 60.0
    endpoint: str | None = None
    reconcile: bool = False
    watched: tuple[str, ...] = ()
    shutdown_grace: float = 10.0
    redact: list[str] = field(default_factory=list)
    source: SpeatSource = field(default_factory=SpeatSource)
    policy: CampaignPolicy = field(default_factory=CampaignPolicy)

    def __post_init__(self) -> None:
        for name, value, least, most in (("--workers", self.workers, 1, None), ("--port", self.port, 0, 65535),
                                         ("--max-attempts", self.max_attempts, 1, None),
                                         ("--retry-delay", self.retry_delay, 0, None)):
            if value < least or most is not None and value > most:
                raise ValueError(f"{name} must be at least {least}{f' and at most {most}' if most else ''}, got "
                                 f"{value}")


class WebhookService:
    """The work queue, the account we write as, and the reconciliation: what the endpoints work with."""

    def __init__(self, config: ServiceConfig, *, screen: Screener | None = None, annotate: Annotator | None = None,
                 own_user_ids: frozenset[str] = frozenset()) -> None:
        self.config, self.own_user_ids, self.started = config, own_user_ids, time.time()
        self.queue = WorkQueue(screen or partial(screen_commit, endpoint=config.endpoint),
                               annotate or partial(_annotate, config), workers=config.workers,
                               max_attempts=config.max_attempts, retry_delay=config.retry_delay,
                               redact=[config.secret.value, *config.redact])
        self.reconciliation: dict[str, Any] = {"state": "pending" if config.reconcile else "off", "queued": 0}
        self._stopping = threading.Event()

    def start(self) -> None:
        self.queue.start()
        if self.config.reconcile:
            threading.Thread(target=self._reconcile, name="reconcile", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self.queue.stop(self.config.shutdown_grace)

    def submit(self, item: WorkItem) -> tuple[Any, bool, list[int]]:
        job, created, superseded = self.queue.submit(item)
        log_event(logger, "webhook.accepted" if created else "webhook.duplicate", f"{item.repo_id}@"
                  f"{item.revision[:12]}: job {job.id}{'' if created else ' (already known)'}", job=job.id,
                  repo=item.repo_id, revision=item.revision, origin=item.origin, superseded=superseded)
        return job, created, superseded

    def _reconcile(self) -> None:
        """Queue the watched repositories' unannotated main commits; retried with back-off while the Hub fails."""
        from speat_metric.evaluation import EvaluationSettings
        from speat_metric.hub.webhook.reconcile import stale_commits

        config, state = self.config, self.reconciliation
        state["state"] = "running"
        for attempt in range(1, config.max_attempts + 1):
            try:
                for item in stale_commits(config.watched, config.settings or EvaluationSettings(stimuli="speat"),
                                          endpoint=config.endpoint, opt_out=config.policy.opt_out):
                    state["queued"] += self.submit(item)[1]
                state["state"] = "done"
                return log_event(logger, "service.reconciled", f"reconciled: {state['queued']} commit(s) queued",
                                 queued=state["queued"])
            except Exception as error:
                state["error"] = f"{type(error).__name__}: {error}"
                log_event(logger, "service.reconcile-failed", f"reconciliation attempt {attempt} of "
                          f"{config.max_attempts} failed: {state['error']}", level=logging.WARNING)
                if self._stopping.wait(config.retry_delay * 2 ** (attempt - 1)):
                    return None
        state["state"] = "failed"
        return None

    def status(self, *, show_private: bool) -> dict[str, Any]:
        jobs = [job.to_dict(show_private=show_private) for job in self.queue.jobs()]
        newest = sorted(jobs, key=lambda job: (job["updated_at"], job["id"]), reverse=True)
        errors = [job for job in newest if job["state"] == "failed" or job["state"] == "queued" and job["attempts"]]
        return {**self.queue.counts(), "workers": {"configured": self.queue.workers, "alive": self.queue.alive},
                "running_jobs": [job for job in jobs if job["state"] == "running"],
                "last_errors": [{"job": job["id"], "repo_id": job["repo_id"], "revision": job["revision"],
                                 "state": job["state"], "attempts": job["attempts"], "error": job["reason"],
                                 "at": job["updated_at"]} for job in errors[:STATUS_LIST_LENGTH]],
                "recent": newest[:STATUS_LIST_LENGTH], "reconciliation": dict(self.reconciliation),
                "uptime_seconds": round(time.time() - self.started, 1)}


def _annotate(config: ServiceConfig, item: WorkItem) -> dict[str, Any]:
    """`annotate_model` at exactly the item's commit, as a pull request; over the day's cap, `Deferred`."""
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.hub.annotate import annotate_model

    outcome = annotate_model(item.repo_id, revision=item.revision, create_pr=True, endpoint=config.endpoint,
                             settings=config.settings or EvaluationSettings(stimuli="speat", progress=False),
                             allow_synthetic=config.allow_synthetic, source=config.source, policy=config.policy)
    if outcome.status == "deferred":
        raise Deferred(config.policy.budget_resets_at().timestamp(), outcome.reason or "deferred")
    if outcome.evaluated_revision not in (None, item.revision):
        raise RuntimeError(f"annotate evaluated {outcome.evaluated_revision}, not the commit {item.revision}")
    return {name: getattr(outcome, name, None) for name in OUTCOME_FIELDS}


def create_app(service: WebhookService) -> FastAPI:
    """The FastAPI app over `service` (its workers start and stop with the app)."""
    from contextlib import asynccontextmanager

    from speat_metric import __version__

    secret = service.config.secret

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        yield
        await run_in_threadpool(service.stop)
        log_event(logger, "service.stopped", "stopped (jobs left unfinished are found again by the next start)")

    app = FastAPI(title="speat webhook", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)

    @app.middleware("http")
    async def log_requests(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        log_event(logger, "http.request", f"{request.method} {request.url.path} {response.status_code}",
                  level=logging.DEBUG if request.url.path == "/healthz" else logging.INFO, method=request.method,
                  path=request.url.path, status=response.status_code,
                  ms=round(1000 * (time.perf_counter() - start), 2))
        return response

    @app.post(WEBHOOK_PATH)
    async def receive_event(request: Request) -> JSONResponse:
        received = request.headers.get(SECRET_HEADER)
        if not secret.verify(received):
            status, why = (401, "missing") if received is None else (403, "wrong")
            log_event(logger, "webhook.rejected", f"{why} {SECRET_HEADER}", level=logging.WARNING, status=status)
            return JSONResponse({"error": f"{why} {SECRET_HEADER} header"}, status)
        declared = request.headers.get("content-length", "")
        too_big = declared.isdigit() and int(declared) > MAX_BODY_BYTES  # refused before it is read
        body = b"" if too_big else await request.body()
        if too_big or len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}, 413)
        try:
            work = event_to_work(body, own_user_ids=service.own_user_ids)
        except PayloadError as error:
            log_event(logger, "webhook.invalid", str(error), level=logging.WARNING)
            return JSONResponse({"error": str(error)}, 422)
        if not isinstance(work, IgnoredEvent) and (opted_out := service.config.policy.opt_out.reason(work.repo_id)):
            work = IgnoredEvent(opted_out)  # before any request to the repository, screening included
        if isinstance(work, IgnoredEvent):
            log_event(logger, "webhook.ignored", work.reason, reason=work.reason)
            return JSONResponse({"accepted": False, "reason": work.reason}, 200)
        job, created, superseded = service.submit(work)
        return JSONResponse({"accepted": True, "job": job.id, "state": job.state, "duplicate": not created,
                             "superseded": superseded}, 202)

    @app.get("/status")
    async def status(request: Request) -> JSONResponse:
        return JSONResponse(service.status(show_private=secret.verify(request.headers.get(SECRET_HEADER))))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if stopped := service.queue.workers - service.queue.alive:
            return JSONResponse({"status": "unhealthy", "problems": [f"{stopped} worker(s) stopped"]}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {"service": "speat webhook: SpEAT bias tables for pushed speech encoders, as card pull requests",
                "version": __version__, "webhook": WEBHOOK_PATH, "status": "/status", "health": "/healthz"}

    return app


class WebhookServer(uvicorn.Server):
    """uvicorn serving the app, binding the socket itself (`url` is known once ``started``); `run` serves until
    SIGINT or SIGTERM (in the main thread) or until ``should_exit`` is set."""

    def __init__(self, service: WebhookService) -> None:
        self.service, self.url, config = service, "", service.config
        super().__init__(uvicorn.Config(create_app(service), host=config.host, port=config.port, log_config=None,
                                        access_log=False, timeout_graceful_shutdown=5, lifespan="on"))

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
            config = self.service.config
            benchmark = config.settings.benchmark if config.settings else None
            attach = f"the SpEAT benchmark {benchmark}" if benchmark else "no benchmark"
            log_event(logger, "service.listening", f"listening on {self.url}{WEBHOOK_PATH} with {config.workers} "
                      f"worker(s); results attach to {attach}", url=self.url, port=port, workers=config.workers,
                      benchmark=benchmark)


def build_server(config: ServiceConfig, *, screen: Screener | None = None, annotate: Annotator | None = None,
                 own_user_ids: frozenset[str] | None = None) -> WebhookServer:
    """The server, not yet running; `screen` and `annotate` replace the Hub's (tests, other deployments), and
    `own_user_ids` default to the token's account (a ValueError without a token, or when the Hub rejects it)."""
    from speat_metric.hub.webhook_events import own_account_ids

    own = own_account_ids(config.endpoint) if own_user_ids is None else own_user_ids
    return WebhookServer(WebhookService(config, screen=screen, annotate=annotate, own_user_ids=own))
