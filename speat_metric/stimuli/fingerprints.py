"""Which audio made a result: stimulus fingerprints, and the benchmark's reference they are compared with.

`stimulus_fingerprint` hashes a test's clips per role: one fingerprint means byte-identical audio in the same roles,
whatever the files were called. `BenchmarkReference` holds the SpEAT benchmark's (``fingerprints.json`` on the Hub);
results made from clips whose bytes differ from it are labelled ``stimuli-differ``.

Example:
    >>> fingerprint = stimulus_fingerprint({"X": ["b" * 64, "a" * 64], "Y": ["c" * 64], "A": ["d" * 64],
    ...                                     "B": ["e" * 64]})
    >>> fingerprint["clips"]["X"] == ["a" * 64, "b" * 64], len(short_fingerprint(fingerprint["test"]))
    (True, 12)

Details: docs/stimuli.md, "Fingerprints".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from speat_metric.network import UNREACHABLE
from speat_metric.repo_ids import check_repo_id
from speat_metric.stimuli.errors import StimulusError

ROLES = ("X", "Y", "A", "B")
REFERENCE_FILE = "fingerprints.json"
"""The benchmark repository's file of reference SHA-256s."""
REFERENCE_VERSION = 1
BENCHMARK_ENVIRONMENT = "SPEAT_BENCHMARK"
"""The environment variable that names the benchmark when ``--benchmark`` is not given."""
SHORT_LENGTH = 12
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def stimulus_fingerprint(sha256_by_role: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """The fingerprint of a test's audio: ``{"test": SHA-256, "clips": {role: sorted SHA-256s}}``; a ValueError for a
    role other than X, Y, A, B, or a value that is not a SHA-256 in hex."""
    clips = {}
    for role, hashes in sha256_by_role.items():
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        clips[role] = sorted(hashes)
        bad = [value for value in clips[role] if not _SHA256.match(value)]
        if bad:
            raise ValueError(f"role {role}: {bad[0]!r} is not a SHA-256 (64 lowercase hex digits)")
    clips = {role: clips.get(role, []) for role in ROLES}
    canonical = json.dumps(clips, separators=(",", ":"))
    return {"test": hashlib.sha256(canonical.encode()).hexdigest(), "clips": clips}


def rows_fingerprint(rows: Iterable[Any]) -> dict[str, Any]:
    """`stimulus_fingerprint` of a test's stimuli (`Stimulus` records, or rows with ``role`` and ``sha256``)."""
    by_role: dict[str, list[str]] = {role: [] for role in ROLES}
    for row in rows:
        by_role[_field(row, "role")].append(_field(row, "sha256"))
    return stimulus_fingerprint(by_role)


def _field(row: Any, name: str) -> Any:
    """A stimulus's field, from a `Stimulus` record or a row of its exported dataset (a mapping)."""
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def short_fingerprint(fingerprint: str | None) -> str:
    """The first 12 hex digits of a fingerprint (``""`` for None)."""
    return fingerprint[:SHORT_LENGTH] if fingerprint else ""


def benchmark_from_environment(value: str | None = None) -> str | None:
    """`value`, else ``$SPEAT_BENCHMARK``, else None; a malformed id is a ValueError.

    Example:
        >>> benchmark_from_environment("my-org/speat-benchmark")
        'my-org/speat-benchmark'
    """
    chosen = value if value is not None else os.environ.get(BENCHMARK_ENVIRONMENT) or None
    if chosen is not None:
        check_repo_id(chosen, "--benchmark" if value is not None else f"${BENCHMARK_ENVIRONMENT}",
                      "my-org/speat-benchmark")
    return chosen


@dataclass(frozen=True)
class BenchmarkReference:
    """The benchmark's record of the study's audio as first downloaded: its dataset repository, the commit it was
    read at (None before it is pushed), each test's fingerprint and each clip's SHA-256 by stimulus id."""

    benchmark: str
    revision: str | None
    tests: dict[str, str] = field(default_factory=dict)
    clips: dict[str, str] = field(default_factory=dict)

    def differing(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """The stimulus ids of `rows` (``stimulus_id``, ``sha256``) whose bytes differ from the reference's; ids the
        reference does not list (custom or demo stimuli) are not compared."""
        pairs = ((_field(row, "stimulus_id"), _field(row, "sha256")) for row in rows)
        return sorted({stimulus_id for stimulus_id, sha256 in pairs if self.clips.get(stimulus_id, sha256) != sha256})

    def comparison(self, test: str, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
        """What a record says of its audio against this reference: the benchmark, its revision, the test's reference
        fingerprint and the differing ids; None when the reference lists none of the rows' stimuli."""
        rows = list(rows)
        if not any(_field(row, "stimulus_id") in self.clips for row in rows):
            return None
        return {"benchmark": self.benchmark, "revision": self.revision, "test": self.tests.get(test),
                "differing": self.differing(rows)}

    def to_json(self) -> str:
        return json.dumps({"version": REFERENCE_VERSION, "benchmark": self.benchmark, "tests": self.tests,
                           "clips": dict(sorted(self.clips.items()))}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, *, benchmark: str, revision: str | None) -> BenchmarkReference:
        """Read ``fingerprints.json`` of `benchmark` at `revision` (a StimulusError if it is not of this version)."""
        try:
            data = json.loads(text)
            if data.get("version") != REFERENCE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, this speat reads {REFERENCE_VERSION}")
            return cls(benchmark, revision, dict(data["tests"]), dict(data["clips"]))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise StimulusError(f"{REFERENCE_FILE} of the benchmark {benchmark} is not a speat fingerprints file "
                                f"({error}); publish it again with `speat hub publish-benchmark --repo {benchmark}`"
                                ) from None


def load_reference(benchmark: str, *, token: str | None = None) -> BenchmarkReference:
    """The reference of the benchmark `benchmark` on the Hub (``HF_ENDPOINT``), read at its current main commit; a
    StimulusError says if the Hub cannot be reached, has no such dataset, or it is not a speat benchmark."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    try:
        revision = HfApi(token=token).repo_info(benchmark, repo_type="dataset").sha
        path = hf_hub_download(benchmark, REFERENCE_FILE, repo_type="dataset", revision=revision, token=token)
    except RepositoryNotFoundError:
        raise StimulusError(f"the Hub has no dataset {benchmark!r} to use as the SpEAT benchmark (check --benchmark or "
                            f"${BENCHMARK_ENVIRONMENT}; `speat hub publish-benchmark` makes one)") from None
    except EntryNotFoundError:
        raise StimulusError(f"the dataset {benchmark!r} has no {REFERENCE_FILE}: it is not a SpEAT benchmark made by "
                            "`speat hub publish-benchmark`") from None
    except (HfHubHTTPError, *UNREACHABLE) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StimulusError(f"the SpEAT benchmark {benchmark!r} could not be read from the Hub ({first})") from None
    with open(path, encoding="utf-8") as file:
        return BenchmarkReference.from_json(file.read(), benchmark=benchmark, revision=revision)
