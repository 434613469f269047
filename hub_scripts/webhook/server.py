"""The HTTP service: a FastAPI app under uvicorn that acknowledges Hub webhook events and queues them.

Endpoints:
    ``POST /webhooks/speat``: a Hub event. The secret is checked before anything else (``X-Webhook-Secret``; missing
        401, wrong 403), then the body is parsed (not a version-3 payload: 422) and classified: an accepted event is
        queued as a job (202, ``{"accepted": true, "job": N, "duplicate": false, "superseded": [...]}``; a replayed
        event answers ``"duplicate": true`` and makes no job); any other event is acknowledged and ignored (200,
        ``{"accepted": false, "reason": "..."}``). Nothing slow runs in the request.
    ``GET /status``: job counts by state (``queued``, ``running``, ``done``, ``failed``, ``ignored``,
        ``superseded``), the running jobs, the last errors and the latest jobs. Private repositories are shown by
        name only to requests that carry the webhook secret.
    ``GET /healthz``: 200 when the job store answers and every worker is alive, else 503.

`serve` runs it: open the job store (and take up jobs a previous run left running), start the workers, listen.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from speat_metric.hub.source import SpeatSource
from speat_metric.hub.webhook.auth import SECRET_HEADER, WebhookSecret
from speat_metric.hub.webhook.events import IgnoredEvent, PayloadError, classify, parse_payload
from speat_metric.hub.webhook.jobs import DEFAULT_LEASE_SECONDS, JobStore
from speat_metric.hub.webhook.logs import log_event
from speat_metric.hub.webhook.worker import Annotator, Screener, WorkerPool

if TYPE_CHECKING:
    from speat_metric.evaluation import EvaluationSettings

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/speat"
MAX_BODY_BYTES = 1 << 20
"""Hub payloads are a few kB; anything bigger is refused (413) before it is read."""
STATUS_LIST_LENGTH = 10


@dataclass
class ServiceConfig:
    """Everything `serve` needs.

    Attributes:
        db: the job store file.
        secret: the webhook secret.
        settings: how the worker evaluates models.
        host, port: where to listen (port 0: any free port; the chosen one is logged).
        workers: worker threads.
        allow_synthetic: allow cards from synthetic stimuli.
        max_attempts: attempts per job before it is marked failed.
        retry_delay: seconds before the first retry (doubled each time).
        endpoint: the Hub (default ``HF_ENDPOINT``).
        lease_seconds: how long a running job's claim lasts without a heartbeat.
        shutdown_grace: seconds a stopping service waits for running jobs before handing them back to the queue.
        source: where the cards tell readers to get speat (`speat_metric.hub.source`).
    """

    db: Path
    secret: WebhookSecret
    settings: EvaluationSettings | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    workers: int = 1
    allow_synthetic: bool = False
    max_attempts: int = 3
    retry_delay: float = 60.0
    endpoint: str | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    shutdown_grace: float = 10.0
    redact: list[str] = field(default_factory=list)
    source: SpeatSource = field(default_factory=SpeatSource)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.max_attempts < 1:
            raise ValueError(f"--max-attempts must be at least 1, got {self.max_attempts}")
        if self.retry_delay < 0:
            raise ValueError(f"--retry-delay must not be negative, got {self.retry_delay}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535, got {self.port}")


class WebhookService:
    """The job store, the worker pool and the account the service writes as: what the endpoints work with."""

    def __init__(self, config: ServiceConfig, *, screen: Screener | None = None,
                 annotate: Annotator | None = None, own_user_ids: frozenset[str] = frozenset()) -> None:
        self.config = config
        self.store = JobStore(config.db, lease_seconds=config.lease_seconds)
        self.own_user_ids = own_user_ids
        self.started = time.time()
        self.pool = WorkerPool(self.store, screen=screen or default_screener(config),
                               annotate=annotate or default_annotator(config), workers=config.workers,
                               max_attempts=config.max_attempts, retry_delay=config.retry_delay,
                               redact=[config.secret.value, *config.redact])

    def start(self) -> None:
        recovered = self.store.recover(max_attempts=self.config.max_attempts)
        if recovered:
            log_event(logger, "service.recovered", f"{len(recovered)} job(s) left running by a previous run are "
                      "queued again", jobs=recovered)
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop(timeout=self.config.shutdown_grace)

    def status(self, *, show_private: bool) -> dict[str, Any]:
        def listed(jobs: list) -> list[dict[str, Any]]:
            return [job.to_dict(show_private=show_private) for job in jobs]

        store = self.store
        # Failed jobs, and queued jobs waiting for a retry after an error.
        errors = [job for job in store.jobs(states=("failed", "queued"), limit=4 * STATUS_LIST_LENGTH,
                                            newest_first=True) if job.state == "failed" or job.attempts > 0]
        errors = errors[:STATUS_LIST_LENGTH]
        return {
            **store.counts(),
            "workers": {"configured": self.pool.workers, "alive": self.pool.alive},
            "running_jobs": listed(store.jobs(states=("running",))),
            "last_errors": [{"job": job["id"], "repo_id": job["repo_id"], "revision": job["revision"],
                             "state": job["state"], "attempts": job["attempts"], "error": job["reason"],
                             "at": job["updated_at"]} for job in listed(errors)],
            "recent": listed(store.jobs(limit=STATUS_LIST_LENGTH, newest_first=True)),
            "uptime_seconds": round(time.time() - self.started, 1),
        }


def default_screener(config: ServiceConfig) -> Screener:
    """`screen_commit` on the configured Hub."""
    from functools import partial

    from speat_metric.hub.webhook.filtering import screen_commit

    return partial(screen_commit, endpoint=config.endpoint)


def default_annotator(config: ServiceConfig) -> Annotator:
    """`HubAnnotator` with the configured settings."""
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.hub.webhook.worker import HubAnnotator

    return HubAnnotator(config.settings or EvaluationSettings(stimuli="speat", progress=False),
                        allow_synthetic=config.allow_synthetic, endpoint=config.endpoint, source=config.source)


def create_app(service: WebhookService) -> FastAPI:
    """The FastAPI app over `service` (its workers are started and stopped with the app)."""
    from contextlib import asynccontextmanager

    from starlette.concurrency import run_in_threadpool

    from speat_metric import __version__

    secret: WebhookSecret = service.config.secret

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        yield
        await run_in_threadpool(service.stop)
        log_event(logger, "service.stopped", "stopped: running jobs finished or handed back to the queue")

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
        """One Hub webhook event: secret first, then the typed payload, then the queue."""
        received = request.headers.get(SECRET_HEADER)
        if not secret.verify(received):
            status, why = (401, "missing") if received is None else (403, "wrong")
            log_event(logger, "webhook.rejected", f"{why} {SECRET_HEADER}", level=logging.WARNING, status=status,
                      client=request.client.host if request.client else None)
            return JSONResponse({"error": f"{why} {SECRET_HEADER} header"}, status)
        body = await _read_body(request)
        if body is None:
            return JSONResponse({"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}, 413)
        try:
            decision = classify(parse_payload(body), own_user_ids=service.own_user_ids)
        except PayloadError as error:
            log_event(logger, "webhook.invalid", str(error), level=logging.WARNING, reason=str(error))
            return JSONResponse({"error": str(error)}, 422)
        if isinstance(decision, IgnoredEvent):
            log_event(logger, "webhook.ignored", decision.reason, reason=decision.reason)
            return JSONResponse({"accepted": False, "reason": decision.reason}, 200)
        submission = await run_in_threadpool(service.store.submit, decision)
        if submission.created:
            service.pool.wake()
        job = submission.job
        log_event(logger, "webhook.duplicate" if not submission.created else "webhook.accepted",
                  f"{decision.repo_id}@{decision.revision[:12]}: job {job.id}"
                  + (" (already known)" if not submission.created else ""), job=job.id, repo=decision.repo_id,
                  revision=decision.revision, state=job.state, superseded=list(submission.superseded))
        return JSONResponse({"accepted": True, "job": job.id, "state": job.state,
                             "duplicate": not submission.created, "superseded": list(submission.superseded)}, 202)

    @app.get("/status")
    async def status(request: Request) -> JSONResponse:
        """Job counts, running jobs, last errors and latest jobs."""
        show_private = secret.verify(request.headers.get(SECRET_HEADER))
        return JSONResponse(await run_in_threadpool(service.status, show_private=show_private))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 when the job store answers and every worker is alive."""
        problems = []
        try:
            await run_in_threadpool(service.store.check)
        except Exception as error:
            problems.append(f"job store: {type(error).__name__}")
        if service.pool.alive < service.pool.workers:
            problems.append(f"{service.pool.workers - service.pool.alive} worker(s) stopped")
        if problems:
            return JSONResponse({"status": "unhealthy", "problems": problems}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {"service": "speat webhook: SpEAT bias tables for pushed speech encoders, as card pull requests",
                "version": __version__, "webhook": WEBHOOK_PATH, "status": "/status", "health": "/healthz",
                "docs": "docs/webhook.md in the speat repository"}

    return app


async def _read_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def own_account_ids(endpoint: str | None) -> frozenset[str]:
    """The name and id of the account our token writes as (discussions it authored are ours).

    Raises:
        ValueError: there is no token, or the Hub rejects it.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        info = HfApi(endpoint=endpoint).whoami()
    except LocalTokenNotFoundError:
        raise ValueError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`) with a token that can open "
                         "pull requests on the watched repositories") from None
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code == 401:
            raise ValueError("the Hub rejects the Hugging Face token (401); set HF_TOKEN to a valid token") from None
        log_event(logger, "service.warning", f"cannot ask the Hub who we are ({type(error).__name__}); going on",
                  level=logging.WARNING)
        return frozenset()
    except Exception as error:  # the Hub unreachable: the queue works without it; jobs retry later
        log_event(logger, "service.warning", f"the Hub cannot be reached ({type(error).__name__}); going on",
                  level=logging.WARNING)
        return frozenset()
    return frozenset(str(value) for value in (info.get("id"), info.get("name")) if value)


@dataclass
class BoundServer:
    """A service whose socket listens: `run` serves until `stop` (or SIGINT/SIGTERM in the main thread)."""

    service: WebhookService
    server: Any
    socket: socket.socket
    url: str

    def run(self) -> None:
        self.server.run(sockets=[self.socket])

    def stop(self) -> None:
        self.server.should_exit = True


def bind(config: ServiceConfig, *, screen: Screener | None = None, annotate: Annotator | None = None,
         own_user_ids: frozenset[str] | None = None) -> BoundServer:
    """Open the job store and listen on the socket (workers start when the server runs).

    Args:
        config: the service configuration.
        screen, annotate: replace the default screener and annotator (tests, other deployments).
        own_user_ids: the Hub ids we write as (default: asked from the Hub with the token).

    Raises:
        ValueError: bad configuration, no token, or the address cannot be bound.
    """
    import uvicorn

    service = WebhookService(config, screen=screen, annotate=annotate)  # opens (and checks) the job store first
    service.own_user_ids = own_account_ids(config.endpoint) if own_user_ids is None else own_user_ids
    try:
        sock = socket.create_server((config.host, config.port), family=_family(config.host))
    except OSError as error:
        raise ValueError(f"cannot listen on {config.host}:{config.port} ({error.strerror or error})") from None
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_config=None, access_log=False,
                                           timeout_graceful_shutdown=5, lifespan="on"))
    log_event(logger, "service.listening", f"listening on {url}{WEBHOOK_PATH} with {config.workers} worker(s), "
              f"job store {config.db}", url=url, port=port, workers=config.workers, db=str(config.db))
    benchmark = config.settings.benchmark if config.settings else None
    log_event(logger, "service.benchmark", f"results attach to the SpEAT benchmark {benchmark}" if benchmark else
              "no --benchmark (nor $SPEAT_BENCHMARK): cards get no .eval_results file (docs/hub.md)",
              benchmark=benchmark)
    return BoundServer(service, server, sock, url)


def serve(config: ServiceConfig, **options: Any) -> None:
    """Run the service until SIGINT or SIGTERM (blocking); `options` are those of `bind`."""
    bind(config, **options).run()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
