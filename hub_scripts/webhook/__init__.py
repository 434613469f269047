"""The automatic-annotation service: a Hub webhook that evaluates every pushed speech encoder and opens its card PR.

The request path only acknowledges and queues; everything slow runs in workers that a restart does not lose::

    Hub event --POST /webhooks/speat--> auth (secret first) -> events (typed payload -> an AnnotationRequest or a
    reason to ignore) -> jobs (SQLite job store: one job per repo and commit) -> 202
    worker: claim a job -> filtering (our own commit? only the card changed? config.json a speech encoder?)
            -> speat_metric.hub.annotate.annotate_model at exactly that commit -> done / retry with back-off / failed

Modules: `events` (payload parsing and which events count), `auth` (the webhook secret), `jobs` (the durable
queue), `filtering` (what a commit holds), `worker` (the worker pool), `server` (the FastAPI app under uvicorn),
`register` (create the webhook on the Hub), `logs` (JSON-lines logs), `cli` (``speat hub webhook``).
"""
