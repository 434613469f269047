"""Where the audio of the stimuli comes from: the demo set, a local directory, the public download, a Hub dataset.

A source (`StimulusSource`) turns a list of `StimulusRef` (which stimuli are wanted) into a `Resolution` (local
files, and why each absent one is absent). `resolve_source` maps the CLI's ``--stimuli`` strings to a source:
``demo`` (`DemoSource`), ``speat`` (`DownloadSource`), a directory (`LocalDirectorySource`) or a Hugging Face Hub
dataset id ``owner/name[@revision]`` (`HubSource`).

Details (the layouts, the Kaggle checks, Hub downloads): docs/stimuli.md, "Sources".
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from speat_metric.network import UNREACHABLE
from speat_metric.stimuli.download import PARTIAL_SUFFIX, RetryPolicy
from speat_metric.stimuli.errors import DownloadError, StimulusError
from speat_metric.stimuli.public import (
    MESS_ZENODO_RECORDS,
    default_cache_dir,
    fetch_mess_clips,
    fetch_saa_recordings,
    saa_base_url,
    zenodo_base_url,
)
from speat_metric.stimuli.selections import DEMO_DIR, read_csv_rows

KAGGLE_METADATA = "speakers_all.csv"
KAGGLE_COLUMNS = ("age", "age_onset", "birthplace", "filename", "native_language", "sex", "speakerid", "country",
                  "file_missing?")
_REPO_ID = re.compile(r"^(?:hf://datasets/)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


@dataclass(frozen=True)
class StimulusRef:
    """One wanted stimulus of a corpus (``"saa"``, ``"mess"``, ``"demo"`` or ``"custom"``): `name` is the SAA
    recording name or MESS clip code (the id otherwise), `speaker_id` the SAA ``speakerid`` the selection expects
    (checked against Kaggle metadata), `path` the audio file of stimuli that come with one (demo set, custom tests)."""

    stimulus_id: str
    corpus: str
    name: str
    speaker_id: int | None = None
    path: str | None = None

    @property
    def file_name(self) -> str:
        """The file name the public corpus uses for this stimulus."""
        if self.corpus == "saa":
            return f"{self.name}.mp3"
        if self.corpus == "mess":
            return f"{self.name}_SCR.wav"
        return Path(self.path).name if self.path else self.name


@dataclass
class Resolution:
    """The outcome of `StimulusSource.resolve`, by stimulus id: the local audio files, their SHA-256 where the
    source already knows it (from its manifest), why the others are absent; and `details` for the provenance."""

    files: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class StimulusSource(abc.ABC):
    """Somewhere stimulus audio can be found."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def resolve(self, refs: Sequence[StimulusRef], *, progress: bool = True) -> Resolution:
        """Find (and fetch, if need be) the audio of `refs`; say why each absent one is absent."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the provenance of datasets and results."""

    def __str__(self) -> str:
        details = ", ".join(f"{key}={value}" for key, value in self.describe().items() if key != "kind")
        return f"{self.kind} source ({details})" if details else f"{self.kind} source"


def _resolve_given_paths(refs: Sequence[StimulusRef], resolution: Resolution,
                         absent: str = "not a stimulus of the public corpora") -> list[StimulusRef]:
    """Resolve the refs that carry their own file, mark the others outside the public corpora `absent`, and return
    the public ones (SAA recordings and MESS clips)."""
    public = []
    for ref in refs:
        if ref.path is not None:
            if Path(ref.path).is_file():
                resolution.files[ref.stimulus_id] = Path(ref.path)
            else:
                resolution.missing[ref.stimulus_id] = "audio file does not exist"
        elif ref.corpus in ("saa", "mess"):
            public.append(ref)
        else:
            resolution.missing[ref.stimulus_id] = absent
    return public


class FileListSource(StimulusSource):
    """Stimuli that come with their own files (tests made with `SpeatTestSpec.from_files`)."""

    kind = "files"
    absent = "no audio file was given for it"

    def resolve(self, refs: Sequence[StimulusRef], *, progress: bool = True) -> Resolution:
        resolution = Resolution()
        for ref in _resolve_given_paths(refs, resolution, self.absent):
            resolution.missing[ref.stimulus_id] = self.absent
        return resolution

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


class DemoSource(FileListSource):
    """The synthetic demo set in `path` (default the embedded one): a pipeline check, NOT a bias measurement."""

    kind = "demo"
    absent = "the demo set holds only synthetic clips, not the public corpora"

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else DEMO_DIR

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "synthetic": True, "path": str(self.path),
                "note": "SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT"}


def _walk_files(root: Path) -> dict[str, list[Path]]:
    """Lower-cased file name -> files under `root`, skipping hidden entries and partial downloads."""
    index: dict[str, list[Path]] = {}
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and not name.endswith(PARTIAL_SUFFIX):
                index.setdefault(name.lower(), []).append(Path(directory) / name)
    return index


@dataclass(frozen=True)
class _KaggleRow:
    speaker_id: int | None
    file_missing: bool


class LocalDirectorySource(StimulusSource):
    """A directory holding stimuli in the known layouts, in any mix (docs/stimuli.md, "Sources"); `metadata` is a
    Kaggle-layout ``speakers_all.csv`` to check SAA recordings against (default the first one in the directory, if
    any), `label` how messages name the directory (default its path)."""

    kind = "local"

    def __init__(self, path: str | os.PathLike, *, metadata: str | os.PathLike | None = None,
                 label: str | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise StimulusError(f"stimulus directory {str(self.path)!r} does not exist or is not a directory")
        self.metadata = Path(metadata) if metadata is not None else None
        self.label = label or str(self.path)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path.resolve())}

    def _kaggle_rows(self, index: dict[str, list[Path]]) -> tuple[Path, dict[str, _KaggleRow]] | None:
        path = self.metadata or next(iter(index.get(KAGGLE_METADATA, [])), None)
        if path is None:
            return None
        rows = read_csv_rows(path, KAGGLE_COLUMNS, layout="the Kaggle Speech Accent Archive metadata")
        parsed = {}
        for row in rows:
            if row["filename"]:
                speaker_id = int(float(row["speakerid"])) if row["speakerid"] else None
                parsed[row["filename"]] = _KaggleRow(speaker_id, row["file_missing?"].lower() in ("true", "1", "yes"))
        return path, parsed

    def _check_kaggle(self, ref: StimulusRef, csv_path: Path, rows: dict[str, _KaggleRow]) -> str | None:
        """Why the Kaggle metadata says `ref` is not there, or None."""
        row = rows.get(ref.name)
        if row is None:
            newest = max((r.speaker_id for r in rows.values() if r.speaker_id is not None), default=0)
            if ref.speaker_id is not None and ref.speaker_id > newest:
                return f"newer than the Kaggle snapshot {csv_path} (its speakerids end at {newest})"
            return f"not listed in {csv_path}"
        if row.file_missing:
            return f"marked file_missing? in {csv_path}"
        if ref.speaker_id is not None and row.speaker_id is not None and row.speaker_id != ref.speaker_id:
            return (f"{csv_path} gives {ref.name} speakerid {row.speaker_id}, the selection {ref.speaker_id} "
                    "(a different recording)")
        return None

    def resolve(self, refs: Sequence[StimulusRef], *, progress: bool = True) -> Resolution:
        resolution = Resolution()
        index = _walk_files(self.path)
        kaggle = self._kaggle_rows(index) if any(ref.corpus == "saa" for ref in refs) else None
        for ref in _resolve_given_paths(refs, resolution):
            if ref.corpus == "saa" and kaggle is not None:
                problem = self._check_kaggle(ref, *kaggle)
                if problem:
                    resolution.missing[ref.stimulus_id] = problem
                    continue
            found = index.get(ref.file_name.lower())
            if found:
                resolution.files[ref.stimulus_id] = found[0]
            else:
                resolution.missing[ref.stimulus_id] = f"no {ref.corpus.upper()} audio file of that name in {self.label}"
        return resolution


class DownloadSource(StimulusSource):
    """The public locations (accent.gmu.edu, Zenodo), through the stimulus cache (`speat_metric.stimuli.public`);
    with `keep_going`, a server that cannot be reached leaves its stimuli missing (with the reason) instead of raising
    a DownloadError (``speat stimuli download`` uses it to print what is cached and missing)."""

    kind = "download"

    def __init__(self, *, cache_dir: str | os.PathLike | None = None, saa_base_url: str | None = None,
                 zenodo_base_url: str | None = None, zenodo_records: Sequence[str] = MESS_ZENODO_RECORDS,
                 retry: RetryPolicy = RetryPolicy(), keep_going: bool = False) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.saa_base_url = saa_base_url
        self.zenodo_base_url = zenodo_base_url
        self.zenodo_records = tuple(zenodo_records)
        self.retry = retry
        self.keep_going = keep_going

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "cache_dir": str(self.cache_dir), "saa_base_url": saa_base_url(self.saa_base_url),
                "zenodo_base_url": zenodo_base_url(self.zenodo_base_url),
                "zenodo_records": list(self.zenodo_records)}

    def resolve(self, refs: Sequence[StimulusRef], *, progress: bool = True) -> Resolution:
        resolution = Resolution()
        rest = _resolve_given_paths(refs, resolution)
        saa = {ref.name: ref.stimulus_id for ref in rest if ref.corpus == "saa"}
        mess = {ref.name: ref.stimulus_id for ref in rest if ref.corpus == "mess"}
        reports = []
        if saa:
            reports.append((saa, fetch_saa_recordings(list(saa), cache_dir=self.cache_dir,
                                                      base_url=self.saa_base_url, retry=self.retry,
                                                      progress=progress, keep_going=self.keep_going)))
        if mess:
            reports.append((mess, fetch_mess_clips(list(mess), cache_dir=self.cache_dir,
                                                   base_url=self.zenodo_base_url, records=self.zenodo_records,
                                                   retry=self.retry, progress=progress,
                                                   keep_going=self.keep_going)))
        for ids, report in reports:
            for key, path in report.files.items():
                resolution.files[ids[key]] = path
                resolution.sha256[ids[key]] = report.sha256[key]
            for key, reason in report.missing.items():
                resolution.missing[ids[key]] = reason
        return resolution


class _SilentTqdm(tqdm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


class HubSource(StimulusSource):
    """A Hugging Face Hub dataset repository ``owner/name`` holding the stimulus files in the layouts of a directory,
    read at `revision` (default the default branch; the commit read is recorded); `cache_dir`, `endpoint` and `token`
    are huggingface_hub's (default ``$HF_HUB_CACHE``, ``$HF_ENDPOINT``, ``$HF_TOKEN`` or the saved login)."""

    kind = "hub"

    def __init__(self, repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 endpoint: str | None = None, token: str | bool | None = None) -> None:
        if not _REPO_ID.match(repo_id) or "@" in repo_id:
            raise StimulusError(f"Hub dataset id {repo_id!r} is not of the form owner/name")
        self.repo_id = repo_id
        self.revision = revision
        self.cache_dir = cache_dir
        self.endpoint = endpoint
        self.token = token
        self.commit: str | None = None

    def describe(self) -> dict[str, Any]:
        from huggingface_hub import constants

        return {"kind": self.kind, "repo_id": self.repo_id, "revision": self.revision or "main",
                "commit": self.commit, "endpoint": self._endpoint() or constants.ENDPOINT}

    def _endpoint(self) -> str | None:
        return self.endpoint or os.environ.get("HF_ENDPOINT")

    def resolve(self, refs: Sequence[StimulusRef], *, progress: bool = True) -> Resolution:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import (
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        resolution = Resolution()
        rest = _resolve_given_paths(refs, resolution)
        names = sorted({ref.file_name for ref in rest} | ({KAGGLE_METADATA} if any(r.corpus == "saa" for r in rest)
                                                          else set()))
        label = f"Hub dataset {self.repo_id!r}" + (f" at revision {self.revision!r}" if self.revision else "")
        try:
            folder = Path(snapshot_download(
                self.repo_id, repo_type="dataset", revision=self.revision, cache_dir=self.cache_dir,
                endpoint=self._endpoint(), token=self.token,
                allow_patterns=[pattern for name in names for pattern in (name, f"*/{name}")],
                tqdm_class=None if progress else _SilentTqdm,
            ))
        except RepositoryNotFoundError:
            raise StimulusError(f"{label} was not found on {self.describe()['endpoint']}; check the id, or log in "
                                "(`hf auth login` or HF_TOKEN) if it is private") from None
        except RevisionNotFoundError:
            raise StimulusError(f"{label}: the revision does not exist; give a branch, tag or commit of the "
                                "repository") from None
        except LocalEntryNotFoundError:  # offline, or the Hub unreachable, and nothing of it in the local cache
            why = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else \
                f"the Hub at {self.describe()['endpoint']} could not be reached"
            raise DownloadError(f"could not download the stimuli from {label}: {why}, and the local Hugging Face "
                                "cache has no copy of it; connect to the Hub once, or give --stimuli a local "
                                "directory") from None
        except (HfHubHTTPError, *UNREACHABLE) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DownloadError(f"could not download the stimuli from {label}: {reason}") from error
        self.commit = folder.name
        resolution.details = {"commit": self.commit}
        label = f"{label} (commit {self.commit})"
        if not folder.is_dir():  # no file matched, so snapshot_download made no folder
            resolution.missing.update({ref.stimulus_id: f"no {ref.corpus.upper()} audio file of that name in {label}"
                                       for ref in rest})
            return resolution
        found = LocalDirectorySource(folder, label=label).resolve(rest)
        resolution.files.update(found.files)
        resolution.missing.update(found.missing)
        return resolution


def resolve_source(spec: str | os.PathLike | StimulusSource, *, cache_dir: str | os.PathLike | None = None
                   ) -> StimulusSource:
    """Turn a ``--stimuli`` value into a source (a `StimulusSource` is returned as is).

    Args:
        spec: ``"demo"`` (embedded synthetic set), ``"speat"`` (download from the public locations into
            `cache_dir`), an existing directory, or a Hub dataset id ``owner/name`` or ``owner/name@revision`` (also
            ``hf://datasets/owner/name@revision``). An existing directory wins over a Hub id of the same spelling.

    Example:
        >>> resolve_source("demo").kind, resolve_source("speat-org/saa-mess@v1").revision
        ('demo', 'v1')
    """
    if isinstance(spec, StimulusSource):
        return spec
    text = os.fspath(spec).strip()
    if text == "demo":
        return DemoSource()
    if text == "speat":
        return DownloadSource(cache_dir=cache_dir)
    path = Path(text).expanduser()
    if path.is_dir():
        return LocalDirectorySource(path)
    if path.exists():
        raise StimulusError(f"stimulus source {text!r} is a file; give the directory that holds the audio files")
    match = _REPO_ID.match(text)
    if match and not text.startswith((".", "/", "~")):
        return HubSource(match["repo"], revision=match["revision"])
    raise StimulusError(
        f"stimulus source {text!r} is neither 'demo', 'speat', an existing directory nor a Hub dataset id "
        "(owner/name or owner/name@revision)"
    )
