"""Where the Space's records come from: a local results directory (by default the bundled example records) or the
Hub dataset repository that ``speat hub push-results`` writes.

Both are read the same way: every ``*.json`` file under the root, recursively, parsed by
`speat_metric.results.EvaluationRecord`. A file that is not a readable record (bad JSON, another tool's JSON, a
newer schema) is skipped with a warning that names it and says why; loading never fails because of one file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from speat_metric.results import EvaluationRecord, read_record_file


def bundled_records_dir() -> Path:
    """The example records made by ``scripts/make_example_records.py`` (synthetic stimuli, random models), shipped
    in the speat package (a Space installs it from requirements.txt)."""
    import speat_metric

    return Path(speat_metric.__file__).resolve().parent / "data" / "example_records"


@dataclass(frozen=True)
class LoadedRecords:
    """What one load of a source gave: the records, a warning per skipped file, and where they came from."""

    records: tuple[EvaluationRecord, ...]
    warnings: tuple[str, ...]
    origin: str


class RecordSource(Protocol):
    """Anything the Space can (re)load records from."""

    def describe(self) -> str: ...

    def load(self) -> LoadedRecords: ...


def read_record_files(root: Path) -> tuple[list[EvaluationRecord], list[str]]:
    """Every record in the ``*.json`` files under `root` (recursively, hidden folders left out), and a warning
    for each file that could not be read as records. A file may hold one record or a JSON list of records (the
    output of ``speat evaluate --format json``)."""
    records: list[EvaluationRecord] = []
    warnings: list[str] = []
    paths = sorted(path for path in root.rglob("*.json")
                   if not any(part.startswith(".") for part in path.relative_to(root).parts))
    for path in paths:
        name = path.relative_to(root).as_posix()
        try:
            records.extend(read_record_file(path))
        except (OSError, ValueError) as error:
            warnings.append(f"{name} skipped: not a speat evaluation record ({_short(error)})")
    return records, warnings


def _short(error: BaseException, limit: int = 240) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class DirectorySource:
    """A local results directory (``speat evaluate --out``, a pruning or distillation run, or the bundled records)."""

    path: Path
    label: str | None = None

    def describe(self) -> str:
        return self.label or f"results directory {self.path}"

    def load(self) -> LoadedRecords:
        if not self.path.is_dir():
            return LoadedRecords((), (f"{self.describe()} does not exist or is not a directory",), self.describe())
        records, warnings = read_record_files(self.path)
        return LoadedRecords(tuple(records), tuple(warnings), self.describe())


@dataclass(frozen=True)
class HubDatasetSource:
    """The Hub dataset repository of ``speat hub push-results``: one record JSON per file, at the root or in folders.

    Each `load` calls ``huggingface_hub.snapshot_download``, which fetches only what changed since the last call.
    The endpoint and token come from huggingface_hub's usual settings (``HF_ENDPOINT``, ``HF_TOKEN``, the login)
    unless given.
    """

    repo_id: str
    revision: str | None = None
    endpoint: str | None = None
    token: str | None = None
    cache_dir: Path | None = None

    def describe(self) -> str:
        return f"Hub dataset {self.repo_id}" + (f"@{self.revision}" if self.revision else "")

    def load(self) -> LoadedRecords:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            folder = snapshot_download(self.repo_id, repo_type="dataset", revision=self.revision,
                                       allow_patterns=["*.json"], endpoint=self.endpoint, token=self.token,
                                       cache_dir=self.cache_dir)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
            message = (f"could not read {self.describe()}: {_short(error)}. Check the repository id, that it is a "
                       "dataset repository, and HF_TOKEN for a private one; press Refresh to try again")
            return LoadedRecords((), (message,), self.describe())
        records, warnings = read_record_files(Path(folder))
        return LoadedRecords(tuple(records), tuple(warnings), self.describe())


def choose_source(*, results: str | os.PathLike | None = None, repo: str | None = None,
                  revision: str | None = None) -> RecordSource:
    """The source the command line or the Space settings name: a directory, a Hub dataset, else the bundled records.

    Raises:
        ValueError: both a directory and a repository were given, or the repository id is malformed.
        FileNotFoundError: the directory does not exist.
    """
    if results is not None and repo is not None:
        raise ValueError("give either a results directory or a Hub dataset repository, not both")
    if repo is not None:
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ValueError(f"Hub dataset repository must look like ORG/NAME, got {repo!r}")
        return HubDatasetSource(repo, revision=revision)
    if results is not None:
        path = Path(results)
        if not path.is_dir():
            problem = "is a file, not a directory" if path.exists() else "does not exist"
            raise FileNotFoundError(f"results directory {path} {problem}; give the --out directory of "
                                    f"speat evaluate (or leave it out for the bundled example records)")
        return DirectorySource(path)
    return DirectorySource(bundled_records_dir(), label="the bundled example records (synthetic stimuli, random "
                                                        "models: a demonstration, not a bias measurement)")
