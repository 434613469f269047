"""The automatic-annotation service, ``speat hub webhook`` (docs/webhook.md): `server` acknowledges events, `events`
reads them, `work` queues them in memory, `reconcile` finds at start what a restart left undone."""
