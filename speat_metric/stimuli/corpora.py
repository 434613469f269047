"""The public audio of three published SpEAT tests, fetched into the stimulus cache: the TTS voices, CORAAL, TORGO.

* `fetch_synthesized_voices`: the 57 text-to-speech WAVs of the SpEAT repository (Human vs. Synthesized, T4), from
  ``{base}/{commit}/data/human_synthesized/<name>.wav`` at the pinned commit `SPEAT_REPO_COMMIT`.
* `fetch_coraal_segments`: the African American side of T1. CORAAL is published per component as archives of whole
  interviews, ``{base}/<component>/<version>/<COMPONENT>_audio_partNN_<version>.tar.gz``; the selection names the
  archive (the folder of ``original_file_path``), the interview and the segment's start and end in seconds.
* `fetch_torgo_clips`: the clips of T2. TORGO is published per speaker group as ``{base}/<F|FC|M|MC>.tar.bz2``
  holding ``<group>/<speaker>/<session>/wav_headMic/<id>.wav``.

Only the archives that hold selected recordings are downloaded (resumable, through `download.download_file`), only
the selected files are read out of them, and the archive is deleted afterwards unless `keep_archives`; the cache then
holds only the selected clips (``human_synthesized/``, ``coraal/``, ``torgo/``), each listed in the cache manifest
with its SHA-256, so a second call makes no request. A corpus's terms are printed once, before its first download.

Checks: the voices are checked against the size and git blob id that GitHub's contents API lists at the pinned
commit (one request); when that API cannot be reached, the first download's SHA-256 is pinned in the manifest and
later downloads must match it. The corpus archives publish no checksum, so the same trust-on-first-use pin applies
to them: the manifest keeps an archive's size and SHA-256 after the archive is deleted, and a later download of it
that differs is refused. Details: docs/stimuli.md, "CORAAL, TORGO and the synthesized voices".
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import soundfile
from tqdm.auto import tqdm

from speat_metric.files import atomic_open
from speat_metric.stimuli.download import (
    CHUNK_SIZE,
    Manifest,
    ManifestEntry,
    RetryPolicy,
    audio_validator,
    download_file,
    fetch_json,
    file_sha256,
)
from speat_metric.stimuli.errors import DownloadError, RemoteFileMissingError, StimulusError
from speat_metric.stimuli.public import FetchReport, chosen_base_url, default_cache_dir

logger = logging.getLogger(__name__)

SPEAT_REPO = "isaacOnline/SpEAT"
SPEAT_REPO_COMMIT = "e08f05ecc3b38634a55b6c66074ea1dcaad8a37e"
"""The commit of the SpEAT repository the selections were copied from (../shared, TESTS.md)."""
SYNTHESIZED_DIR = "data/human_synthesized"

DEFAULT_SYNTHESIZED_BASE_URL = f"https://raw.githubusercontent.com/{SPEAT_REPO}"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_CORAAL_BASE_URL = "http://lingtools.uoregon.edu/coraal"
DEFAULT_TORGO_BASE_URL = "https://www.cs.toronto.edu/~complingweb/data/TORGO"
SYNTHESIZED_BASE_URL_ENV = "SPEAT_SYNTHESIZED_BASE_URL"
GITHUB_API_URL_ENV = "SPEAT_GITHUB_API_URL"
CORAAL_BASE_URL_ENV = "SPEAT_CORAAL_BASE_URL"
TORGO_BASE_URL_ENV = "SPEAT_TORGO_BASE_URL"

SYNTHESIZED_TERMS = (
    "The synthesized voices come from the SpEAT repository (github.com/isaacOnline/SpEAT, commit "
    f"{SPEAT_REPO_COMMIT[:8]}), which has no licence file: the authors keep the copyright. Cite Slaughter, "
    "Greenberg, Schwartz & Caliskan (2023), Findings of EMNLP."
)
CORAAL_TERMS = (
    "CORAAL (Corpus of Regional African American Language; Kendall & Farrington, The Online Resources for African "
    "American Language Project, University of Oregon) is a public corpus; the UO Language Variation and Change lab "
    "releases it under a Creative Commons licence (Attribution-NonCommercial-ShareAlike). Terms and the citation of "
    "each component: https://oraal.uoregon.edu/coraal"
)
TORGO_TERMS = (
    "TORGO (Rudzicz, Namasivayam & Wolff 2012, Language Resources and Evaluation 46:523-541; University of "
    "Toronto) is used under the terms of its download page, "
    "https://www.cs.toronto.edu/~complingweb/data/TORGO/torgo.html (also distributed by the LDC as LDC2012S02)."
)

_FILE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_CORAAL_SOURCE = re.compile(r"(?:^|/)(?P<archive>(?P<component>[A-Z]{3})_audio_part\d+_(?P<version>\d[\d.]*))/"
                            r"(?P<interview>[\w.-]+\.wav)$")
_TORGO_SOURCE = re.compile(r"(?:^|/)(?P<member>(?P<group>FC|MC|F|M)/(?P<speaker>(?P=group)\d+)/(?P<session>Session\w*)/"
                           r"wav_(?:headMic|arrayMic)/[\w.-]+\.wav)$")
_READ_DTYPE = {"PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32", "FLOAT": "float32", "DOUBLE": "float64"}


def synthesized_base_url(url: str | None = None) -> str:
    """Raw-file base of the SpEAT repository: `url`, else ``$SPEAT_SYNTHESIZED_BASE_URL``, else GitHub's raw host."""
    return chosen_base_url(url, "--base-url-synthesized", SYNTHESIZED_BASE_URL_ENV, DEFAULT_SYNTHESIZED_BASE_URL)


def github_api_url(url: str | None = None) -> str:
    """GitHub REST API base: `url`, else ``$SPEAT_GITHUB_API_URL``, else https://api.github.com."""
    return chosen_base_url(url, "--github-api-url", GITHUB_API_URL_ENV, DEFAULT_GITHUB_API_URL)


def coraal_base_url(url: str | None = None) -> str:
    """CORAAL download base: `url`, else ``$SPEAT_CORAAL_BASE_URL``, else http://lingtools.uoregon.edu/coraal."""
    return chosen_base_url(url, "--base-url-coraal", CORAAL_BASE_URL_ENV, DEFAULT_CORAAL_BASE_URL)


def torgo_base_url(url: str | None = None) -> str:
    """TORGO download base: `url`, else ``$SPEAT_TORGO_BASE_URL``, else the University of Toronto's TORGO folder."""
    return chosen_base_url(url, "--base-url-torgo", TORGO_BASE_URL_ENV, DEFAULT_TORGO_BASE_URL)


@dataclass(frozen=True)
class CoraalSegment:
    """One CORAAL clip of a selection: `name` is its name in the selection (``file_name`` of
    ``coraal_buckeye_joined/clip_info.csv``, e.g. ``"1.wav"``; ``.wav`` optional), `source` the interview it is cut
    from (``original_file_path``, e.g. ``data/CORAAL/ROC/ROC_audio_part01_2020.05/ROC_se0_ag1_f_02_1.wav``; any
    prefix before ``<archive>/<interview>.wav`` is ignored), and
    `start_time`/`end_time` the segment in seconds; samples ``round(start*sr)`` up to ``round(end*sr)`` are kept.

    Example:
        >>> segment = CoraalSegment("1.wav", "data/CORAAL/ROC/ROC_audio_part01_2020.05/ROC_se0_ag1_f_02_1.wav",
        ...                         2320.917, 2380.1018)
        >>> segment.archive_path, segment.interview
        ('roc/2020.05/ROC_audio_part01_2020.05.tar.gz', 'ROC_se0_ag1_f_02_1.wav')
    """

    name: str
    source: str
    start_time: float
    end_time: float

    def __post_init__(self) -> None:
        _check_file_name(self.name, "CORAAL segment name")
        if _CORAAL_SOURCE.search(self.source) is None:
            raise StimulusError(f"CORAAL segment {self.name}: source {self.source!r} is not of the form "
                                "<COMPONENT>_audio_partNN_<version>/<interview>.wav")
        if not 0 <= self.start_time < self.end_time:
            raise StimulusError(f"CORAAL segment {self.name}: start_time {self.start_time} and end_time "
                                f"{self.end_time} do not make a segment (need 0 <= start < end)")

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> CoraalSegment:
        """From a row of ``coraal_buckeye_joined/clip_info.csv`` (``file_name``, ``original_file_path``,
        ``start_time``, ``end_time``)."""
        return cls(row["file_name"], row["original_file_path"], float(row["start_time"]), float(row["end_time"]))

    @property
    def _parts(self) -> re.Match[str]:
        return _CORAAL_SOURCE.search(self.source)

    @property
    def interview(self) -> str:
        """The interview's file name inside its archive."""
        return self._parts["interview"]

    @property
    def archive_path(self) -> str:
        """The archive's path below the CORAAL base URL: ``<component>/<version>/<archive>.tar.gz``."""
        parts = self._parts
        return f"{parts['component'].lower()}/{parts['version']}/{parts['archive']}.tar.gz"


@dataclass(frozen=True)
class TorgoClip:
    """One TORGO clip of a selection: `name` its ``uid`` in ``TORGO/clip_info.csv`` (e.g. ``0005_FC03_Session2``),
    `source` its ``head_mic_fp`` (e.g. ``data/TORGO/FC/FC03/Session2/wav_headMic/0005.wav``).

    Example:
        >>> clip = TorgoClip("0005_FC03_Session2", "data/TORGO/FC/FC03/Session2/wav_headMic/0005.wav")
        >>> clip.archive_path, clip.member
        ('FC.tar.bz2', 'FC/FC03/Session2/wav_headMic/0005.wav')
    """

    name: str
    source: str

    def __post_init__(self) -> None:
        _check_file_name(self.name, "TORGO clip name")
        if _TORGO_SOURCE.search(self.source) is None:
            raise StimulusError(f"TORGO clip {self.name}: source {self.source!r} is not of the form "
                                "<F|FC|M|MC>/<speaker>/<session>/wav_headMic/<id>.wav")

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> TorgoClip:
        """From a row of ``TORGO/clip_info.csv`` (``uid``, ``head_mic_fp``)."""
        return cls(row["uid"], row["head_mic_fp"])

    @property
    def member(self) -> str:
        """The file's path inside its archive (a leading folder in the archive is tolerated)."""
        return _TORGO_SOURCE.search(self.source)["member"]

    @property
    def archive_path(self) -> str:
        """The archive's path below the TORGO base URL: ``<group>.tar.bz2``."""
        return f"{_TORGO_SOURCE.search(self.source)['group']}.tar.bz2"


def _check_file_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _FILE_NAME.match(name):
        raise StimulusError(f"{what} {name!r} is not a plain file name (letters, digits, '_', '.', '-')")


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git object id of a file's content, as GitHub's contents API reports it: SHA-1 of
    ``b"blob <size>\\0" + content``."""
    digest = hashlib.sha1(b"blob %d\0" % Path(path).stat().st_size)  # noqa: S324 (git's object id, not security)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def show_terms_once(cache: Path, corpus: str, terms: str) -> None:
    """Print a corpus's terms (to stderr) unless ``<cache>/<corpus>/TERMS.txt`` says they were shown; keep them
    there, beside the corpus's clips."""
    marker = cache / corpus / "TERMS.txt"
    if marker.is_file():
        return
    tqdm.write(f"[{corpus}] {terms}", file=sys.stderr)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(terms + "\n", encoding="utf-8")


def _cached(manifest: Manifest, relative: str, origin: str) -> ManifestEntry | None:
    """The manifest entry of `relative` if the file is intact and its URL ends with `origin` (the path below the
    base URL, so a mirror serves the same cache, while a changed selection or commit is fetched again)."""
    entry = manifest.cached(relative)
    return entry if entry is not None and entry.url.endswith(origin) else None


def _download_pinned(url: str, relative: str, cache: Path, manifest: Manifest, *, retry: RetryPolicy,
                     progress: bool, validate: Callable[[bytes], str | None] | None = None) -> tuple[int, str]:
    """Download `url` to ``<cache>/<relative>`` and check it against the SHA-256 the manifest pinned for it at its
    first download (trust on first use); a mismatch deletes the file and raises a one-line DownloadError."""
    pinned = manifest.entries.get(relative)
    with tqdm(desc=PurePosixPath(relative).name, unit="B", unit_scale=True, disable=not progress) as bar:
        size, sha256 = download_file(url, cache / relative, retry=retry, validate=validate, progress=bar)
    if pinned is not None and (size, sha256) != (pinned.size, pinned.sha256):
        (cache / relative).unlink()
        raise DownloadError(f"{url} is not the file first downloaded on {pinned.downloaded_at[:10]} (SHA-256 "
                            f"{sha256[:12]}..., pinned {pinned.sha256[:12]}...): refused, nothing kept (if it was "
                            f"re-released on purpose, remove {relative!r} from {manifest.path})")
    return size, sha256


def fetch_synthesized_voices(
    names: Sequence[str],
    cache_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    api_url: str | None = None,
    commit: str = SPEAT_REPO_COMMIT,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool = True,
) -> FetchReport:
    """Get the SpEAT repository's synthesized voices ``<name>.wav`` (e.g. ``male_ms_sam_fast``; ``.wav`` optional)
    at `commit` into ``<cache>/human_synthesized/``.

    Each file is checked against the size and git blob id that ``{api}/repos/isaacOnline/SpEAT/contents/
    data/human_synthesized?ref=<commit>`` lists (names it does not list are reported missing without a request);
    when the API cannot be reached, the first download's SHA-256 is pinned in the manifest instead.

    Returns:
        A `FetchReport`: ``files`` maps each name as given to its local WAV; ``missing`` says why others are absent.

    Raises:
        StimulusError: a name is not a plain file name, `commit` not a full commit id, or a base URL not http(s)
            (before any request).
        DownloadError: a file does not match the listing or its pin (it is deleted), or the server failed repeatedly.
    """
    for name in names:
        _check_file_name(name, "synthesized voice")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise StimulusError(f"commit {commit!r} is not a full git commit id; give its 40 hex digits")
    base, api = synthesized_base_url(base_url), github_api_url(api_url)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    manifest, report = Manifest(cache), FetchReport()
    urls = {name: f"{base}/{commit}/{SYNTHESIZED_DIR}/{name.removesuffix('.wav')}.wav" for name in names}
    relatives = {name: f"human_synthesized/{name.removesuffix('.wav')}.wav" for name in names}
    todo = []
    for name in names:
        entry = _cached(manifest, relatives[name], urls[name].removeprefix(base))
        if entry is None:
            todo.append(name)
        else:
            report.add(name, cache / entry.path, entry.sha256, downloaded=False)
    if not todo:
        return report
    listing = _github_listing(commit, api, retry)
    show_terms_once(cache, "human_synthesized", SYNTHESIZED_TERMS)
    for name in tqdm(todo, desc="SpEAT synthesized voices", unit="file", disable=not progress):
        relative, file_name = relatives[name], PurePosixPath(relatives[name]).name
        if listing is not None and file_name not in listing:
            report.missing[name] = f"not in {SYNTHESIZED_DIR} of {SPEAT_REPO} at commit {commit[:8]}"
            continue
        try:
            size, sha256 = _download_pinned(urls[name], relative, cache, manifest, retry=retry, progress=False,
                                            validate=audio_validator("wav"))
        except RemoteFileMissingError as error:
            report.missing[name] = f"not available at {base} ({error.reason})"
            continue
        if listing is not None and (size, git_blob_sha1(cache / relative)) != listing[file_name]:
            (cache / relative).unlink()
            raise DownloadError(f"{urls[name]} does not match the size and git blob id GitHub lists for it at commit "
                                f"{commit[:8]}; refused, nothing kept")
        manifest.record(ManifestEntry(relative, urls[name], size, sha256,
                                      f"git-blob-sha1:{listing[file_name][1]}" if listing else None))
        report.add(name, cache / relative, sha256, downloaded=True)
    return report


def _github_listing(commit: str, api: str, retry: RetryPolicy) -> dict[str, tuple[int, str]] | None:
    """File name -> (size, git blob id) of the voices' folder at `commit`, or None when the API cannot answer (e.g.
    its rate limit for anonymous clients)."""
    url = f"{api}/repos/{SPEAT_REPO}/contents/{SYNTHESIZED_DIR}?ref={commit}"
    try:
        entries = fetch_json(url, retry=retry)
        return {entry["name"]: (int(entry["size"]), entry["sha"]) for entry in entries if entry.get("type") == "file"}
    except (DownloadError, KeyError, TypeError, ValueError, AttributeError) as error:
        logger.warning("could not list %s (%s); the files' first download is pinned instead", url, error)
        return None


def _extract_selected(archive: Path, archive_url: str, wanted: Mapping[str, Path]) -> dict[str, Path]:
    """Copy the members of a tar archive whose path is, or ends with ``/`` + , a key of `wanted` to the path that key
    maps to, reading the archive once from start to end (compressed tar archives cannot seek); returns the keys
    found. An unreadable archive is deleted."""
    found: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:*") as bundle:
            for member in bundle:
                if not member.isfile():
                    continue
                key = next((k for k in wanted if member.name == k or member.name.endswith(f"/{k}")), None)
                if key is None or key in found:
                    continue
                source = bundle.extractfile(member)
                with source, atomic_open(wanted[key], "wb") as target:
                    shutil.copyfileobj(source, target, CHUNK_SIZE)
                found[key] = wanted[key]
    except (tarfile.TarError, EOFError, OSError) as error:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive_url} is not a readable tar archive ({error}); it was deleted, run again to "
                            "download it afresh") from None
    return found


def _fetch_archive(url: str, relative: str, cache: Path, manifest: Manifest, *, corpus: str, terms: str,
                   retry: RetryPolicy, progress: bool) -> Path:
    """The archive ``<cache>/<relative>``, downloaded unless kept from an earlier call."""
    if manifest.cached(relative) is None:
        show_terms_once(cache, corpus, terms)
        size, sha256 = _download_pinned(url, relative, cache, manifest, retry=retry, progress=progress)
        manifest.record(ManifestEntry(relative, url, size, sha256))
    return cache / relative


def _by_archive(items: Iterable[CoraalSegment | TorgoClip]) -> dict[str, list]:
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(item.archive_path, []).append(item)
    return groups


def _check_unique(items: Sequence[CoraalSegment | TorgoClip], what: str) -> None:
    seen: dict[str, CoraalSegment | TorgoClip] = {}
    for item in items:
        if seen.setdefault(item.name, item) != item:
            raise StimulusError(f"two different {what} are both named {item.name!r}; give each clip its own name")


def fetch_coraal_segments(
    segments: Sequence[CoraalSegment],
    cache_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    keep_archives: bool = False,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool = True,
) -> FetchReport:
    """Cut CORAAL segments into ``<cache>/coraal/<name>.wav`` (WAV at the interview's sampling rate and sample format),
    downloading only the archives ``{base}/<component>/<version>/<archive>.tar.gz`` that hold their interviews.

    Archives are downloaded with resume and retries, read for the selected interviews only, and deleted afterwards
    unless `keep_archives` (then under ``<cache>/archives/coraal/``); the interviews are deleted once cut.

    Returns:
        A `FetchReport` keyed by segment name; an archive the server does not have (e.g. a release no longer
        hosted), an interview not in its archive or a segment past the interview's end are in ``missing``.

    Raises:
        StimulusError: two different segments share a name (before any request).
        DownloadError: the server failed repeatedly, or an archive differs from its pinned first download.
    """
    _check_unique(segments, "CORAAL segments")
    base = coraal_base_url(base_url)
    return _fetch_from_archives(
        segments, cache_dir, base=base, corpus="coraal", terms=CORAAL_TERMS, keep_archives=keep_archives,
        retry=retry, progress=progress, key_in_archive=lambda segment: segment.interview,
        origin=lambda segment: f"/{segment.archive_path}#{segment.interview}[{segment.start_time}:{segment.end_time}]",
        store=_cut_segment,
    )


def fetch_torgo_clips(
    clips: Sequence[TorgoClip],
    cache_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    keep_archives: bool = False,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool = True,
) -> FetchReport:
    """Get TORGO clips into ``<cache>/torgo/<name>.wav``, downloading only the speaker-group archives
    ``{base}/<F|FC|M|MC>.tar.bz2`` that hold them and reading only the selected files out of them.

    Returns and raises as `fetch_coraal_segments` (``missing``: an archive not on the server, a file not in it).
    """
    _check_unique(clips, "TORGO clips")
    base = torgo_base_url(base_url)
    return _fetch_from_archives(
        clips, cache_dir, base=base, corpus="torgo", terms=TORGO_TERMS, keep_archives=keep_archives, retry=retry,
        progress=progress, key_in_archive=lambda clip: clip.member,
        origin=lambda clip: f"/{clip.archive_path}#{clip.member}", store=_move_clip,
    )


def _cut_segment(extracted: Path, target: Path, segment: CoraalSegment) -> str | None:
    """Write samples ``round(start*sr):round(end*sr)`` of the interview to `target` in its own sample format; or
    say why the segment is not in it."""
    info = soundfile.info(str(extracted))
    start, stop = round(segment.start_time * info.samplerate), round(segment.end_time * info.samplerate)
    if stop > info.frames:
        return (f"segment ends at {segment.end_time} s, after the end of {segment.interview} "
                f"({info.frames / info.samplerate:.3f} s): a different release of the interview?")
    data, rate = soundfile.read(str(extracted), start=start, stop=stop, dtype=_READ_DTYPE.get(info.subtype, "float64"),
                                always_2d=False)
    with atomic_open(target, "wb") as file:
        soundfile.write(file, data, rate, subtype=info.subtype, format="WAV")
    return None


def _move_clip(extracted: Path, target: Path, clip: TorgoClip) -> str | None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(extracted, target)
    return None


def _fetch_from_archives(items: Sequence, cache_dir: str | os.PathLike | None, *, base: str, corpus: str,
                         terms: str, keep_archives: bool, retry: RetryPolicy, progress: bool,
                         key_in_archive: Callable, origin: Callable, store: Callable) -> FetchReport:
    """The shared loop of the archive corpora: skip what is cached, then per needed archive download it, extract
    the wanted files into a hidden work folder, `store` each as its clip, record it, and clean up."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    manifest, report = Manifest(cache), FetchReport()
    relatives = {item.name: f"{corpus}/{item.name.removesuffix('.wav')}.wav" for item in items}
    todo = []
    for item in items:
        entry = _cached(manifest, relatives[item.name], origin(item))
        if entry is None:
            todo.append(item)
        else:
            report.add(item.name, cache / entry.path, entry.sha256, downloaded=False)
    for archive_path, group in _by_archive(todo).items():
        url, relative = f"{base}/{archive_path}", f"archives/{corpus}/{archive_path}"
        try:
            archive = _fetch_archive(url, relative, cache, manifest, corpus=corpus, terms=terms, retry=retry,
                                     progress=progress)
        except RemoteFileMissingError as error:
            report.missing.update({item.name: f"archive {url} is not available ({error.reason})" for item in group})
            continue
        work = cache / corpus / f".extract-{PurePosixPath(archive_path).name}"
        keys = dict.fromkeys(key_in_archive(item) for item in group)  # several segments may share an interview
        wanted = {key: work / str(index) for index, key in enumerate(keys)}
        try:
            found = _extract_selected(archive, url, wanted)
            for item in group:
                key = key_in_archive(item)
                if key not in found:
                    report.missing[item.name] = f"{key} is not in {url}"
                    continue
                problem = store(found[key], cache / relatives[item.name], item)
                if problem:
                    report.missing[item.name] = problem
                    continue
                target = cache / relatives[item.name]
                sha256 = file_sha256(target)
                manifest.record(ManifestEntry(relatives[item.name], f"{base}{origin(item)}", target.stat().st_size,
                                              sha256))
                report.add(item.name, target, sha256, downloaded=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if not keep_archives:
                archive.unlink(missing_ok=True)
    return report
