"""The self-hosted automatic-annotation service, ``speat hub webhook`` (docs/webhook.md): `server` acknowledges events,
`work` queues them in memory, `reconcile` finds at start what a restart left undone."""
