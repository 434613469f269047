"""The Space's current records: loaded from a source, reloaded on demand, extended by evaluations run in the Space.

One `ResultTable` is built per change and then only read, so a request never sees a half-built table.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from speat_metric.results import EvaluationRecord
from speat_metric.space.rows import ResultTable, build_table
from speat_metric.space.sources import RecordSource


class RecordStore:
    """Holds the table of one source plus the records evaluated in this Space since it started."""

    def __init__(self, source: RecordSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._loaded: tuple[EvaluationRecord, ...] = ()
        self._warnings: tuple[str, ...] = ()
        self._origin = source.describe()
        self._added: list[EvaluationRecord] = []
        self.table: ResultTable = build_table((), origin=self._origin)
        self.reload()

    def reload(self) -> ResultTable:
        """Read the source again (a Hub dataset fetches only what changed)."""
        loaded = self.source.load()
        with self._lock:
            self._loaded, self._warnings, self._origin = loaded.records, loaded.warnings, loaded.origin
            return self._rebuild()

    def add(self, records: Sequence[EvaluationRecord]) -> ResultTable:
        """Add records evaluated here; they stay until the Space restarts."""
        with self._lock:
            self._added.extend(records)
            return self._rebuild()

    def _rebuild(self) -> ResultTable:
        origin = self._origin + (f" + {len(self._added)} evaluated in this Space" if self._added else "")
        self.table = build_table([*self._loaded, *self._added], warnings=self._warnings, origin=origin)
        return self.table
