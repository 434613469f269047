"""Downloading files over HTTP into a cache: retries with backoff, resume, atomic files and a manifest.

`download_file` resumes a hidden partial file and renames it onto the target only once it is complete, so an
interrupted run never leaves a file that looks complete. `Manifest` is the JSON record of a cache directory (URL,
size and SHA-256 of every file); a file counts as cached only when the manifest lists it and its size and SHA-256
match. The HTTP client is urllib, on purpose (no dependency whose HTTP client changes across versions): see
docs/stimuli.md, "Downloads".
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from speat_metric import __version__
from speat_metric.files import atomic_write_text
from speat_metric.stimuli.errors import DownloadError, RemoteFileMissingError

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
USER_AGENT = f"speat/{__version__} (SpEAT stimuli downloader; Python urllib)"

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_TRANSIENT_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)
CHUNK_SIZE = 1 << 16


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `attempts` per request (the first included), waiting ``backoff * 2**k`` seconds (at most
    `max_backoff`, which also caps a server's ``Retry-After``) in between; `timeout`: per request, in seconds."""

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0 or self.timeout <= 0:
            raise ValueError(f"RetryPolicy needs backoff >= 0, max_backoff >= 0 and timeout > 0, got {self}")

    def wait(self, retry: int, retry_after: str | None = None) -> None:
        """Sleep before retry number `retry` (0-based)."""
        delay = min(self.max_backoff, self.backoff * 2**retry)
        if retry_after and retry_after.strip().isdigit():
            delay = min(self.max_backoff, max(delay, float(retry_after)))
        if delay > 0:
            time.sleep(delay)


@dataclass(frozen=True)
class ManifestEntry:
    """One cached file: its path relative to the cache directory (``/`` separators), where it came from
    (``<archive url>#<member>`` for files extracted from an archive), the checksum the server published, if any."""

    path: str
    url: str
    size: int
    sha256: str
    source_checksum: str | None = None
    downloaded_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


class Manifest:
    """The JSON manifest ``<cache_dir>/manifest.json``: URL, size and SHA-256 of every file downloaded into it."""

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / MANIFEST_NAME
        self.entries: dict[str, ManifestEntry] = self._read()

    def _read(self) -> dict[str, ManifestEntry]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {entry["path"]: ManifestEntry(**entry) for entry in data["files"]}
        except (ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring unreadable stimulus manifest %s (%s); files will be fetched again",
                           self.path, error)
            return {}

    def cached(self, relative_path: str) -> ManifestEntry | None:
        """The entry of `relative_path` if the file exists with the recorded size and SHA-256, else None."""
        entry = self.entries.get(relative_path)
        target = self.cache_dir / relative_path
        if entry is None or not target.is_file() or target.stat().st_size != entry.size:
            return None
        if file_sha256(target) != entry.sha256:
            logger.warning("cached file %s does not match its manifest SHA-256; fetching it again", target)
            return None
        return entry

    def record(self, entry: ManifestEntry) -> None:
        """Add or replace `entry` and save the manifest at once (atomically, merged with what is on disk)."""
        self.entries = {**self._read(), **self.entries, entry.path: entry}
        files = [asdict(self.entries[path]) for path in sorted(self.entries)]
        atomic_write_text(self.path, json.dumps({"version": 1, "files": files}, indent=1) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_audio(head: bytes) -> str | None:
    """Name the container of a file from its first bytes: ``"wav"``, ``"flac"``, ``"ogg"``, ``"mp3"`` or None."""
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _retry_after(error: object) -> str | None:
    """The Retry-After header of an HTTP error response, if any."""
    return error.headers.get("Retry-After") if isinstance(error, urllib.error.HTTPError) else None


def _request(url: str, *, headers: dict[str, str] | None = None, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) URLs given by the caller)


def fetch_json(url: str, *, retry: RetryPolicy = RetryPolicy()) -> Any:
    """GET `url` and parse its JSON body, retrying transient failures (HTTP 404 or 410: RemoteFileMissingError)."""
    last_error: BaseException | None = None
    for attempt in range(retry.attempts):
        if attempt:
            retry.wait(attempt - 1, _retry_after(last_error))
        try:
            with _request(url, headers={"Accept": "application/json"}, timeout=retry.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            if error.code in (404, 410):
                raise RemoteFileMissingError(url, f"HTTP {error.code}") from None
            if error.code not in _TRANSIENT_STATUS:
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
            last_error = error
            continue
        except _TRANSIENT_ERRORS as error:
            last_error = error
            continue
        try:
            return json.loads(body)
        except ValueError as error:
            raise DownloadError(f"{url} did not return JSON ({error})") from None
    raise DownloadError(f"no answer from {url} after {retry.attempts} attempts ({last_error}); check the network "
                        "connection and the base URL")


class _RangeMismatch(Exception):
    """A 206 answer whose Content-Range does not start where the partial file ends."""


def _expected_total(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Full size of the file from Content-Range (206) or Content-Length (200)."""
    if response.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != offset:
            raise _RangeMismatch(response.headers.get("Content-Range"))
        return int(match.group(2)) if match.group(2) != "*" else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _checksum_matches(path: Path, checksum: str) -> bool:
    algorithm, _, expected = checksum.partition(":")
    if not expected:
        algorithm, expected = "md5", algorithm
    digest = hashlib.new(algorithm.lower())
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected.lower()


def download_file(
    url: str,
    destination: str | os.PathLike,
    *,
    retry: RetryPolicy = RetryPolicy(),
    expected_checksum: str | None = None,
    validate: Callable[[bytes], str | None] | None = None,
    progress: tqdm | None = None,
) -> tuple[int, str]:
    """Download `url` to `destination` through a resumable ``.<name>.partial`` file beside it, then rename it
    atomically once complete (docs/stimuli.md, "Downloads"); returns the file's (size in bytes, SHA-256 hex).

    `expected_checksum` is ``"md5:<hex>"``, ``"sha256:<hex>"`` or a bare md5 hex. `validate` gets the first bytes and
    returns why they are not acceptable (the file is then missing, a RemoteFileMissingError like HTTP 404), or None.
    A DownloadError after `retry.attempts` attempts keeps the partial file; the next call resumes it.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}{PARTIAL_SUFFIX}")
    last_error: BaseException | str | None = None
    for attempt in range(retry.attempts):
        if attempt:
            retry.wait(attempt - 1, _retry_after(last_error))
        offset = partial.stat().st_size if partial.exists() else 0
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            with _request(url, headers=headers, timeout=retry.timeout) as response:
                if offset and response.status != 206:
                    offset = 0  # the server ignored the Range header and sends the whole file again
                    if progress is not None:
                        progress.update(-partial.stat().st_size)
                total = _expected_total(response, offset)
                with open(partial, "ab" if offset else "wb") as out:
                    while chunk := response.read(CHUNK_SIZE):
                        out.write(chunk)
                        if progress is not None:
                            progress.update(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
        except urllib.error.HTTPError as error:
            if error.code in (404, 410):
                partial.unlink(missing_ok=True)
                raise RemoteFileMissingError(url, f"HTTP {error.code}") from None
            if error.code == 416:  # the partial file is not a prefix of what the server has: start again
                partial.unlink(missing_ok=True)
            elif error.code not in _TRANSIENT_STATUS:
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
            last_error = error
            continue
        except _RangeMismatch as error:
            partial.unlink(missing_ok=True)
            last_error = f"asked for bytes={offset}- and got Content-Range {error}"
            continue
        except _TRANSIENT_ERRORS as error:
            logger.info("download of %s interrupted (%s); attempt %d of %d", url, error, attempt + 1, retry.attempts)
            last_error = error
            continue
        size = partial.stat().st_size
        if total is not None and size != total:
            if size > total:
                partial.unlink()
            last_error = f"received {size} of {total} bytes"
            continue
        if expected_checksum and not _checksum_matches(partial, expected_checksum):
            partial.unlink()
            last_error = f"content does not match the published checksum {expected_checksum}"
            continue
        if validate is not None:
            with open(partial, "rb") as file:
                problem = validate(file.read(64))
            if problem:
                partial.unlink()
                raise RemoteFileMissingError(url, problem)
        sha256 = file_sha256(partial)
        os.replace(partial, destination)
        return size, sha256
    kept = f"; the partial file {partial} is kept and the next run resumes it" if partial.exists() else ""
    raise DownloadError(f"could not download {url} after {retry.attempts} attempts (last problem: {last_error})"
                        f"{kept}. Check the network connection, or use a local copy of the stimuli.")


def audio_validator(expected: str) -> Callable[[bytes], str | None]:
    """A `download_file` validator accepting only files whose first bytes are of the `expected` audio format."""

    def validate(head: bytes) -> str | None:
        found = sniff_audio(head)
        if found == expected:
            return None
        kind = "an HTML page" if head.lstrip().lower().startswith((b"<!doctype", b"<html")) else f"{found or 'data'}"
        return f"served {kind}, not {expected} audio"

    return validate
