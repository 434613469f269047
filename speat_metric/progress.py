"""Progress bars that count whole units, end full, and leave one final line in a log.

tqdm redraws a bar when it closes; when the last update was drawn too, a log (where carriage returns become new
lines) shows the final line twice. `ProgressBar` leaves the last step to `close`, so it is drawn once.
"""

from __future__ import annotations

from types import TracebackType

from tqdm.auto import tqdm


class ProgressBar:
    """A tqdm bar over `total` whole units (clips, tests, seconds of audio rounded up, steps); `enabled` False shows
    nothing (``--no-progress``, or not the main process).

    Example:
        >>> with ProgressBar(3, unit="test", desc="tests", enabled=False) as bar:
        ...     for _ in range(3):
        ...         bar.advance()
        >>> bar.done
        3
    """

    def __init__(self, total: int, *, unit: str, desc: str, enabled: bool = True) -> None:
        self.total = int(total)
        self._bar = tqdm(total=self.total, unit=unit, desc=desc, disable=not enabled)
        self.done = 0

    def advance(self, units: int = 1) -> None:
        """Count `units` more done."""
        self.advance_to(self.done + units)

    def advance_to(self, done: int) -> None:
        """Set the count of units done (never beyond the total, never backwards)."""
        done = min(max(int(done), self.done), self.total)
        if done >= self.total:
            self._bar.n = self.total  # drawn by close(), once
        elif done > self.done:
            self._bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        """End the bar full when the work is complete (it stays where it is after an error)."""
        self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def silence_library_progress_bars(*, downloads: bool = False) -> None:
    """Silence transformers' own bars ("Loading weights", ...), which would interleave with ours, and, unless
    `downloads`, huggingface_hub's download bars too (``--no-progress``). Downloads keep their bars when asked and the
    user has not turned them off (``HF_HUB_DISABLE_PROGRESS_BARS``): they run before our bars start, and a large model
    with no sign of progress looks hung."""
    import transformers
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    hub_bars_on = not are_progress_bars_disabled()
    transformers.utils.logging.disable_progress_bar()  # turns huggingface_hub's off as well
    if downloads and hub_bars_on:
        enable_progress_bars()
    else:
        disable_progress_bars()
