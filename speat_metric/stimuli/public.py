"""The public locations of the stimuli, fetched into the stimulus cache (`default_cache_dir`).

`fetch_saa_recordings` downloads Speech Accent Archive recordings from ``{saa base}/<name>.mp3``;
`fetch_mess_clips` takes Morgan Emotional Speech Set clips from Zenodo records, one by one or extracted from a zip
archive that is kept. Files that are cached are not requested again.

Details (the Zenodo API, the base URLs, the cache layout): docs/stimuli.md, "Public locations and cache".
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

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

logger = logging.getLogger(__name__)

CACHE_ENV = "SPEAT_CACHE"
SAA_BASE_URL_ENV = "SPEAT_SAA_BASE_URL"
ZENODO_BASE_URL_ENV = "SPEAT_ZENODO_BASE_URL"
DEFAULT_SAA_BASE_URL = "https://accent.gmu.edu/soundtracks"
DEFAULT_ZENODO_BASE_URL = "https://zenodo.org"
MESS_ZENODO_RECORDS = ("3813437", "7378320")


def default_cache_dir() -> Path:
    """Where downloaded stimuli live: ``$SPEAT_CACHE/stimuli``, else ``$HF_HOME/speat/stimuli``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "stimuli"
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(hf_home).expanduser() / "speat" / "stimuli"


def saa_base_url(url: str | None = None) -> str:
    """The Speech Accent Archive base URL: `url`, else ``$SPEAT_SAA_BASE_URL``, else accent.gmu.edu/soundtracks."""
    return chosen_base_url(url, "--base-url-saa", SAA_BASE_URL_ENV, DEFAULT_SAA_BASE_URL)


def zenodo_base_url(url: str | None = None) -> str:
    """The Zenodo base URL: `url`, else ``$SPEAT_ZENODO_BASE_URL``, else https://zenodo.org."""
    return chosen_base_url(url, "--base-url-zenodo", ZENODO_BASE_URL_ENV, DEFAULT_ZENODO_BASE_URL)


def chosen_base_url(url: str | None, option: str, variable: str, default: str) -> str:
    """The chosen base URL without its trailing slash; one that is not http(s) is an error naming where it came from
    (before anything is requested)."""
    chosen = url or os.environ.get(variable) or default
    if not chosen.startswith(("http://", "https://")):
        where = option if url else f"${variable}"
        raise StimulusError(f"{where} {chosen!r} is not an http(s) URL; write it in full, e.g. https://{chosen}")
    return chosen.rstrip("/")


@dataclass
class FetchReport:
    """What a fetch found, by key (SAA name or MESS code): local files and their SHA-256, why the others are missing,
    and the keys fetched over the network by this call (the rest came from the cache)."""

    files: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    downloaded: list[str] = field(default_factory=list)

    def add(self, key: str, path: Path, sha256: str, *, downloaded: bool) -> None:
        self.files[key] = path
        self.sha256[key] = sha256
        if downloaded:
            self.downloaded.append(key)


def _use_cache(cache_dir: str | os.PathLike | None, keys: Iterable[str], relative: Callable[[str], str]
               ) -> tuple[Path, Manifest, FetchReport, list[str]]:
    """The cache, its manifest, a report of the keys already cached, and the other keys."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    manifest, report, todo = Manifest(cache), FetchReport(), []
    for key in keys:
        entry = manifest.cached(relative(key))
        if entry is None:
            todo.append(key)
        else:
            report.add(key, manifest.cache_dir / entry.path, entry.sha256, downloaded=False)
    return cache, manifest, report, todo


def fetch_saa_recordings(
    names: Sequence[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool = True,
    keep_going: bool = False,
) -> FetchReport:
    """Get Speech Accent Archive recordings ``<name>.mp3`` (from `saa_base_url`) into the cache, downloading those not
    there yet; names the server does not have are in `FetchReport.missing`.

    Raises:
        DownloadError: the server could not be reached or failed repeatedly (files fetched so far are kept), unless
            `keep_going`: then the recordings not yet cached are reported missing, with the reason.
    """
    base = saa_base_url(base_url)
    cache, manifest, report, todo = _use_cache(cache_dir, names, lambda name: f"saa/{name}.mp3")
    with tqdm(total=len(todo), desc="Speech Accent Archive", unit="file", disable=not progress or not todo) as bar:
        for index, name in enumerate(todo):
            relative, url = f"saa/{name}.mp3", f"{base}/{quote(name)}.mp3"
            try:
                size, sha256 = download_file(url, cache / relative, retry=retry, validate=audio_validator("mp3"))
            except RemoteFileMissingError as error:
                report.missing[name] = f"not available at {base} ({error.reason})"
            except DownloadError as error:
                if keep_going:
                    report.missing.update(dict.fromkeys(todo[index:], f"could not be downloaded from {base}"))
                    logger.warning("%s", error)
                    break
                raise DownloadError(f"{error} ({len(report.downloaded)} of {len(todo)} recordings were downloaded "
                                    "before this; run again to continue)") from error
            else:
                manifest.record(ManifestEntry(relative, url, size, sha256))
                report.add(name, cache / relative, sha256, downloaded=True)
            bar.update()
    return report


@dataclass(frozen=True)
class ZenodoFile:
    """A file of a Zenodo record: its key (file name), size, published checksum and download URL."""

    key: str
    size: int | None
    checksum: str | None
    url: str


def list_zenodo_files(record_id: str, *, base_url: str | None = None, retry: RetryPolicy = RetryPolicy()
                      ) -> list[ZenodoFile]:
    """The files of a Zenodo record, from ``GET {base}/api/records/{record_id}`` (the current API's ``files`` list
    or the ``files.entries`` form); RemoteFileMissingError if the record does not exist."""
    base = zenodo_base_url(base_url)
    url = f"{base}/api/records/{record_id}"
    data = fetch_json(url, retry=retry)
    entries = data.get("files") if isinstance(data, dict) else None
    if isinstance(entries, dict):
        entries = entries.get("entries")
    if isinstance(entries, dict):
        entries = list(entries.values())
    if not isinstance(entries, list):
        raise DownloadError(f"{url} is not a Zenodo record with a file list")
    files = []
    for entry in entries:
        key = (entry.get("key") or entry.get("filename")) if isinstance(entry, dict) else None
        if not key:
            continue
        links = entry.get("links") or {}
        link = links.get("content") or links.get("self") or links.get("download")
        if link is None or re.search(r"/api/records/[^/]+/files/[^/]+$", link):
            link = f"{base}/api/records/{record_id}/files/{quote(key)}/content"
        checksum = entry.get("checksum")
        files.append(ZenodoFile(key=key, size=entry.get("size") or entry.get("filesize"),
                                checksum=checksum if checksum else None, url=link))
    return files


def _extract_members(archive: Path, archive_url: str, wanted: dict[str, str], cache: Path, manifest: Manifest,
                     report: FetchReport) -> None:
    """Copy the members of a zip whose base name is in `wanted` (file name -> code) into ``<cache>/mess/``."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                code = wanted.get(PurePosixPath(member.filename).name)
                if member.is_dir() or code is None or code in report.files:
                    continue
                relative = f"mess/{PurePosixPath(member.filename).name}"
                with bundle.open(member) as source, atomic_open(cache / relative, "wb") as target:
                    shutil.copyfileobj(source, target, CHUNK_SIZE)
                sha256 = file_sha256(cache / relative)
                manifest.record(ManifestEntry(relative, f"{archive_url}#{member.filename}", member.file_size, sha256))
                report.add(code, cache / relative, sha256, downloaded=True)
    except zipfile.BadZipFile as error:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{archive} (from {archive_url}) is not a valid zip archive ({error}); it was deleted, "
                            "run again to download it afresh") from None


def fetch_mess_clips(
    codes: Sequence[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    records: Sequence[str] = MESS_ZENODO_RECORDS,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool = True,
    keep_going: bool = False,
) -> FetchReport:
    """Get Morgan Emotional Speech Set clips ``<code>_SCR.wav`` into the cache from the Zenodo `records`, singly or
    from zip archives (docs/stimuli.md); clips in none of the records are in `FetchReport.missing`.

    Raises:
        DownloadError: Zenodo could not be reached or failed repeatedly, or an archive is corrupt (unless
            `keep_going`: then the clips not yet cached are reported missing, with the reason).
    """
    base = zenodo_base_url(base_url)
    cache, manifest, report, todo = _use_cache(cache_dir, codes, lambda code: f"mess/{code}_SCR.wav")
    reason = f"in none of the Zenodo records {', '.join(records)} at {base}"
    for record_id in records:
        wanted = {f"{code}_SCR.wav": code for code in todo if code not in report.files}
        if not wanted:
            break
        try:
            _fetch_from_record(record_id, wanted, base=base, cache=cache, manifest=manifest, report=report,
                               retry=retry, progress=progress)
        except DownloadError as error:
            if not keep_going:
                raise
            logger.warning("%s", error)
            reason = f"could not be downloaded from {base}"
            break
    for code in codes:
        if code not in report.files:
            report.missing[code] = reason
    return report


def _fetch_from_record(record_id: str, wanted: dict[str, str], *, base: str, cache: Path, manifest: Manifest,
                       report: FetchReport, retry: RetryPolicy, progress: bool) -> None:
    """Download the `wanted` clips (file name -> code) that one Zenodo record has, singly or from its zips."""
    try:
        files = list_zenodo_files(record_id, base_url=base, retry=retry)
    except RemoteFileMissingError:
        logger.warning("Zenodo record %s was not found at %s", record_id, base)
        return
    singles = [f for f in files if PurePosixPath(f.key).name in wanted]
    with tqdm(total=len(singles), desc=f"MESS (Zenodo {record_id})", unit="file",
              disable=not progress or not singles) as bar:
        for item in singles:
            relative = f"mess/{PurePosixPath(item.key).name}"
            try:
                size, sha256 = download_file(item.url, cache / relative, retry=retry,
                                             expected_checksum=item.checksum, validate=audio_validator("wav"))
            except RemoteFileMissingError as error:
                logger.warning("%s", error)
            else:
                manifest.record(ManifestEntry(relative, item.url, size, sha256, item.checksum))
                report.add(wanted[PurePosixPath(item.key).name], cache / relative, sha256, downloaded=True)
            bar.update()
    for item in (f for f in files if f.key.lower().endswith(".zip")):
        remaining = {name: code for name, code in wanted.items() if code not in report.files}
        if not remaining:
            break
        relative = f"zenodo/{record_id}/{PurePosixPath(item.key).name}"
        if manifest.cached(relative) is None:
            with tqdm(total=item.size, desc=f"{item.key} (Zenodo {record_id})", unit="B", unit_scale=True,
                      disable=not progress) as bar:
                try:
                    size, sha256 = download_file(item.url, cache / relative, retry=retry,
                                                 expected_checksum=item.checksum, progress=bar)
                except RemoteFileMissingError as error:
                    logger.warning("%s", error)
                    continue
            manifest.record(ManifestEntry(relative, item.url, size, sha256, item.checksum))
        _extract_members(cache / relative, item.url, remaining, cache, manifest, report)
