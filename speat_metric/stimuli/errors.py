"""The errors of the stimuli package: every one names the stimulus, file or value at fault and says how to fix it."""

from __future__ import annotations

from collections.abc import Mapping

HOW_TO_OBTAIN = (
    "To obtain them: run `speat stimuli download` (fetches the Speech Accent Archive recordings from accent.gmu.edu "
    "and the Morgan Emotional Speech Set from Zenodo into the stimulus cache), or point the source at a directory or "
    "a Hugging Face Hub dataset that holds them (saa/<name>.mp3, mess/<code>_SCR.wav, or the Kaggle layout "
    "recordings/<name>.mp3 + speakers_all.csv). To go on without them, add --allow-missing (allow_missing=True in "
    "Python): the dropped ids are then recorded in the dataset info and in every result made from it."
)


DOWNLOADED_FILE_HINT = "speat downloaded this file: delete it and run `speat stimuli download` to fetch it again"
"""What to do about a broken file of the stimulus cache (a download cut short, a disk error)."""


def shown_ids(ids: list[str], limit: int = 10) -> str:
    """Stimulus ids as a message shows them: the first `limit`, then how many there are in all.

    Example:
        >>> shown_ids([f"mess/{index}" for index in range(12)], limit=2)
        'mess/0, mess/1, ... (12 in all)'
    """
    return ", ".join(ids[:limit]) + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


class StimulusError(ValueError):
    """Stimuli cannot be used as asked: a bad test name, source, metadata file or audio file."""


class MissingStimuliError(StimulusError):
    """Some stimuli of a request could not be found in the source: `missing` maps each stimulus id to why (e.g.
    ``"HTTP 404 from https://..."``); `source` says where they were looked for."""

    def __init__(self, missing: Mapping[str, str], source: str, *, context: str = "") -> None:
        self.missing = dict(missing)
        self.source = source
        by_reason: dict[str, list[str]] = {}
        for stimulus_id, reason in self.missing.items():
            by_reason.setdefault(reason, []).append(stimulus_id)
        lines = [f"  {reason}: {shown_ids(ids)}" for reason, ids in by_reason.items()]
        subject = f"{len(self.missing)} stimuli{f' of {context}' if context else ''}"
        super().__init__(f"{subject} are missing from {source}:\n" + "\n".join(lines) + f"\n{HOW_TO_OBTAIN}")


class UnreadableStimulusError(StimulusError):
    """A stimulus's audio file is empty, not audio, or truncated (found before any model loads); `problem` is the
    message without its advice (``--allow-missing`` is an option of ``speat evaluate`` and the recipes only)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem} (or add --allow-missing to go on without it)")
        self.problem = problem


class DownloadError(StimulusError):
    """A download failed for a reason other than the file being absent (network down, server error, bad data)."""


class RemoteFileMissingError(DownloadError):
    """The server says a file does not exist (HTTP 404/410), or serves something that is not the file (`reason`, e.g.
    ``"HTTP 404"``)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")
