"""Stimuli as typed records: a `StimulusSet` of `Stimulus` records (audio file, SHA-256, role, metadata) with its
`StimulusProvenance`, which the pipeline consumes as they are; ``to_dataset()`` exports a ``datasets.Dataset``.

`load_speat_test` gives all four roles of a test; `load_accent_archive` and `load_morgan` give recordings of one
corpus. Every loader takes a ``source`` (`speat_metric.stimuli.sources.resolve_source`). Missing stimuli raise
`MissingStimuliError`, unless ``allow_missing=True``: then they are dropped and the provenance records them.
The exported dataset's columns and info: docs/stimuli.md, "Stimulus sets and datasets".
"""

from __future__ import annotations

import dataclasses
import logging
import os
import wave
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from speat_metric import __version__
from speat_metric.audio import AudioDecodeError, check_audio
from speat_metric.stimuli.battery import (
    BATTERY_BY_ID,
    CORPORA,
    DOWNLOADABLE,
    BatteryClip,
    CorpusUnavailableError,
    battery_clips,
    corpus_directory,
    get_speat_test,
    selection_files,
)
from speat_metric.stimuli.download import file_sha256
from speat_metric.stimuli.errors import (
    DOWNLOADED_FILE_HINT,
    DownloadError,
    MissingStimuliError,
    StimulusError,
    UnreadableStimulusError,
)
from speat_metric.stimuli.public import default_cache_dir
from speat_metric.stimuli.selections import (
    MESS_CITATION,
    SAA_CITATION,
    SAA_PARAGRAPH,
    SELECTIONS_VERSION,
    SPEAT_CITATION,
    Citation,
    SpeatTestSpec,
    attribute_groups,
    demo_available,
    demo_metadata,
    demo_speat_test,
    mess_clips,
    saa_speakers,
    selection_versions,
)
from speat_metric.stimuli.sources import (
    DemoSource,
    DownloadSource,
    FileListSource,
    Resolution,
    StimulusRef,
    StimulusSource,
    resolve_source,
)

logger = logging.getLogger(__name__)

SYNTHETIC_NOTICE = "SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT"

STIMULUS_FEATURES = datasets.Features({
    "stimulus_id": datasets.Value("string"),
    "corpus": datasets.Value("string"),
    "name": datasets.Value("string"),
    "audio": datasets.Audio(decode=False),
    "sha256": datasets.Value("string"),
    "num_bytes": datasets.Value("int64"),
    "test": datasets.Value("string"),
    "role": datasets.Value("string"),
    "group": datasets.Value("string"),
    "pair_id": datasets.Value("int32"),
    "speaker_id": datasets.Value("string"),
    "age": datasets.Value("float32"),
    "sex": datasets.Value("string"),
    "birthplace": datasets.Value("string"),
    "native_language": datasets.Value("string"),
    "emotion": datasets.Value("string"),
    "cue": datasets.Value("string"),
    "valence": datasets.Value("float32"),
    "text": datasets.Value("string"),
})
_METADATA_COLUMNS = ("speaker_id", "age", "sex", "birthplace", "native_language", "emotion", "cue", "valence", "text")


@dataclass(frozen=True)
class Stimulus:
    """One stimulus: its audio file and what it is (``test``, ``role``, ``group``, ``pair_id`` are None outside a
    test; `metadata` holds the corpus's columns: speaker, age, sex, emotion, valence, ...)."""

    stimulus_id: str
    corpus: str
    name: str
    path: str
    sha256: str
    num_bytes: int
    test: str | None = None
    role: str | None = None
    group: str | None = None
    pair_id: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The stimulus as a row of the exported dataset (`STIMULUS_FEATURES`)."""
        return {"stimulus_id": self.stimulus_id, "corpus": self.corpus, "name": self.name,
                "audio": {"bytes": None, "path": self.path}, "sha256": self.sha256, "num_bytes": self.num_bytes,
                "test": self.test, "role": self.role, "group": self.group, "pair_id": self.pair_id,
                **{column: self.metadata.get(column) for column in _METADATA_COLUMNS}}


@dataclass(frozen=True)
class StimulusProvenance:
    """Where a set's stimuli come from, copied into every result made from them (`to_dict`): the test (None for a
    corpus request), the source, the selection files used, the stimuli requested, loaded, dropped (``allow_missing``,
    with why) and left unpaired, and a custom test's file, its hash and each clip's file (`definition`)."""

    test: str | None
    config: str
    synthetic: bool
    source: dict[str, Any]
    selection_versions: dict[str, str]
    requested: int
    loaded: int
    group_sizes: dict[str, int]
    dropped_ids: list[str]
    dropped_reasons: dict[str, str]
    unpaired_ids: list[str]
    speat_version: str = __version__
    definition: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The provenance as records store it (``definition`` only for custom tests)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if self.definition is None:
            del values["definition"]
        return values


@dataclass(frozen=True)
class StimulusSet:
    """The stimuli of one test (`name`: ``gender``, a custom test's) or corpus request (``accent_archive``,
    ``morgan``), in role order, with their provenance; `description`, `citations` and `license` go to the exported
    dataset's info."""

    name: str
    stimuli: tuple[Stimulus, ...]
    provenance: StimulusProvenance
    description: str = ""
    citations: tuple[Citation, ...] = ()
    license: str = ""

    def __iter__(self) -> Iterator[Stimulus]:
        return iter(self.stimuli)

    def __len__(self) -> int:
        return len(self.stimuli)

    def of_role(self, role: str) -> list[Stimulus]:
        return [stimulus for stimulus in self.stimuli if stimulus.role == role]

    def to_dataset(self) -> datasets.Dataset:
        """The stimuli as a ``datasets.Dataset`` (audio as paths: ``Audio(decode=False)``), its info carrying the
        description, citations, licence and every file's size and SHA-256."""
        info = datasets.DatasetInfo(
            description=self.description, citation="\n".join(citation.bibtex for citation in self.citations),
            homepage=self.citations[0].url if self.citations else "", license=self.license,
            features=STIMULUS_FEATURES, dataset_name="speat-stimuli", config_name=self.name,
            version=SELECTIONS_VERSION, download_checksums={stimulus.path: {
                "num_bytes": stimulus.num_bytes, "checksum": f"sha256:{stimulus.sha256}"} for stimulus in self})
        # Built from an Arrow table: encoding through datasets.Audio would import torchcodec even with decode=False.
        table = pa.Table.from_pylist([stimulus.row() for stimulus in self], schema=STIMULUS_FEATURES.arrow_schema)
        return datasets.Dataset(datasets.table.InMemoryTable(table), info=info)


@dataclass(frozen=True)
class _Entry:
    """A wanted stimulus and the role it plays, before its audio is found."""

    ref: StimulusRef
    test: str | None = None
    role: str | None = None
    group: str | None = None
    pair_id: int | None = None
    metadata: dict[str, Any] | None = None  # the metadata columns; None: look them up in the selections


def stimulus_refs(spec: SpeatTestSpec) -> list[StimulusRef]:
    """The stimuli of a test as `StimulusRef` objects, in role order (X, Y, A, B); a StimulusError for an id that is
    neither ``saa/<name>`` nor ``mess/<code>`` and has no file in the test."""
    files = dict(spec.files)
    refs = []
    for stimulus_id in spec.stimulus_ids:
        corpus, _, name = stimulus_id.partition("/")
        if stimulus_id in files and stimulus_id in battery_clips():  # a published test's clip, found in a user copy
            refs.append(StimulusRef(stimulus_id, corpus, name, path=files[stimulus_id]))
        elif stimulus_id in files:
            refs.append(StimulusRef(stimulus_id, "demo" if spec.synthetic else "custom", stimulus_id,
                                    path=files[stimulus_id]))
        elif corpus in ("saa", "mess") and name:
            refs.append(_public_ref(corpus, name))
        elif stimulus_id in battery_clips():  # its file is found by locate_corpus_files; unlocated, it is missing
            refs.append(StimulusRef(stimulus_id, corpus, name))
        else:
            raise StimulusError(f"test {spec.name!r}: stimulus {stimulus_id!r} has no audio file and is not a public "
                                "stimulus (saa/<name> or mess/<code>); give its file with SpeatTestSpec.from_files")
    return refs


def _public_ref(corpus: str, name: str) -> StimulusRef:
    """A Speech Accent Archive recording (with the speakerid the selections expect) or a MESS clip."""
    speaker = saa_speakers().get(name) if corpus == "saa" else None
    return StimulusRef(f"{corpus}/{name}", corpus, name, speaker.speaker_id if speaker else None)


def _metadata(ref: StimulusRef) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_METADATA_COLUMNS)
    if ref.corpus == "saa" and ref.name in saa_speakers():
        speaker = saa_speakers()[ref.name]
        row.update(speaker_id=str(speaker.speaker_id), age=speaker.age, sex=speaker.sex,
                   birthplace=speaker.birthplace, native_language=speaker.native_language, text=SAA_PARAGRAPH)
    elif ref.corpus == "mess" and ref.name in mess_clips():
        clip = mess_clips()[ref.name]
        row.update(speaker_id=clip.talker, sex="female" if clip.talker.startswith("F") else "male",
                   emotion=clip.emotion_name, cue=clip.cue_name, valence=clip.valence)
    elif ref.stimulus_id in battery_clips():
        row.update(speaker_id=battery_clips()[ref.stimulus_id].speaker or None,
                   text=SAA_PARAGRAPH if ref.corpus == "synthesized" else None)
    return row


def _demo_metadata_columns(demo_dir: Path) -> dict[str, dict[str, Any]]:
    """Metadata columns of every clip of the demo set in `demo_dir`, by stimulus id (empty if there is none)."""
    if not demo_available(demo_dir):
        return {}
    return {row["stimulus_id"]: {**dict.fromkeys(_METADATA_COLUMNS), "speaker_id": row["voice"] or None,
                                 "sex": row["sex"] or None, "text": row["text"] or None}
            for row in demo_metadata(demo_dir)}


def _license(citations: Sequence[Citation], synthetic: bool) -> str:
    if synthetic:
        return "synthetic speech made by speat's generator; see speat_metric/data/demo/README.md"
    parts = []
    if SAA_CITATION in citations:
        parts.append("Speech Accent Archive recordings: CC BY-NC-SA 2.0")
    if MESS_CITATION in citations:
        parts.append("Morgan Emotional Speech Set clips: see the Zenodo record's licence")
    if SPEAT_CITATION in citations and not parts:
        parts.append("the terms of each corpus (docs/stimuli.md, \"The published battery\")")
    return "; ".join(parts) or "the licences of your own files"


def _set_aside_unreadable(resolution: Resolution, *, downloaded: bool, allow_missing: bool) -> None:
    """Check every resolved file's container before any model loads (`check_audio`: empty, not audio, truncated).
    An unreadable file stops the work, or with `allow_missing` counts as missing (dropped, its reason recorded)."""
    for stimulus_id, path in list(resolution.files.items()):
        try:
            check_audio(path, name=stimulus_id)
        except AudioDecodeError as error:
            message = f"{error}; {DOWNLOADED_FILE_HINT}" if downloaded else str(error)
            if not allow_missing:
                raise UnreadableStimulusError(message) from None
            logger.warning("%s; going on without it (--allow-missing)", message)
            del resolution.files[stimulus_id]
            resolution.missing[stimulus_id] = f"unreadable: {error.problem}"


def _build(entries: list[_Entry], source: StimulusSource, *, spec: SpeatTestSpec | None, config_name: str,
           description: str, citations: Sequence[Citation], allow_missing: bool, progress: bool) -> StimulusSet:
    """Resolve the entries' audio, check it, and assemble the set with its provenance."""
    synthetic = spec is not None and spec.synthetic
    context = f"the {config_name!r} test" if spec is not None else f"the {config_name} request"
    if spec is not None and spec.definition_file:
        context += f" ({spec.definition_file})"
    resolution = source.resolve([entry.ref for entry in entries], progress=progress)
    _set_aside_unreadable(resolution, downloaded=isinstance(source, DownloadSource), allow_missing=allow_missing)
    if resolution.missing and not allow_missing:
        raise MissingStimuliError(resolution.missing, str(source), context=context)
    kept = [entry for entry in entries if entry.ref.stimulus_id in resolution.files]
    if not kept:
        raise StimulusError(f"none of the {len(entries)} stimuli of {context} were found in {source}")
    if spec is not None:
        for group in spec.groups:
            present = sum(entry.role == group.role for entry in kept)
            if present < 2:
                raise StimulusError(
                    f"only {present} stimuli of group {group.role} ({group.name}) of {context} were found in {source}; "
                    "SpEAT needs at least 2 per group"
                )
    pair_sizes = Counter(entry.pair_id for entry in kept if entry.pair_id is not None)
    unpaired = sorted(e.ref.stimulus_id for e in kept if e.pair_id is not None and pair_sizes[e.pair_id] < 2)

    stimuli = []
    for entry in kept:
        path = resolution.files[entry.ref.stimulus_id]
        stimuli.append(Stimulus(
            entry.ref.stimulus_id, entry.ref.corpus, entry.ref.name, str(path),
            resolution.sha256.get(entry.ref.stimulus_id) or file_sha256(path), path.stat().st_size,
            entry.test, entry.role, entry.group, None if entry.ref.stimulus_id in unpaired else entry.pair_id,
            entry.metadata if entry.metadata is not None else _metadata(entry.ref)))
    dropped = {stimulus_id: resolution.missing[stimulus_id] for stimulus_id in sorted(resolution.missing)}
    study = any(entry.ref.corpus in ("saa", "mess") for entry in entries)  # the study's selections are used
    further = (spec is not None and spec.definition_file is None and not spec.synthetic
               and spec.name in BATTERY_BY_ID and spec.name not in ("gender", "age", "native"))
    definition = None
    if spec is not None and spec.definition_file is not None:  # a custom test: its file, and each clip's file in it
        base = Path(spec.definition_file).resolve().parent
        definition = {"file": spec.definition_file, "sha256": spec.definition_sha256,
                      "files": {stimulus_id: os.path.relpath(path, base) for stimulus_id, path in spec.files}}
    provenance = StimulusProvenance(
        test=spec.name if spec is not None else None, config=config_name, synthetic=synthetic,
        source=source.describe(), selection_versions=(selection_versions(selection_files(spec.name)) if further
                                                      else selection_versions() if study else {}),
        requested=len(entries), loaded=len(kept),
        group_sizes={role: sum(e.role == role for e in kept) for role in "XYAB"} if spec is not None else {},
        dropped_ids=list(dropped), dropped_reasons=dropped, unpaired_ids=unpaired, definition=definition)
    text = ([f"{SYNTHETIC_NOTICE}."] if synthetic and SYNTHETIC_NOTICE not in description else [])
    text += [description, f"Source: {source}."]
    if dropped:
        text.append(f"Dropped because missing (allow_missing=True): {', '.join(dropped)}.")
    return StimulusSet(config_name, tuple(stimuli), provenance, "\n\n".join(text), tuple(citations),
                       _license(citations, synthetic))


def cut_segment(source: Path, start: float, end: float, target: Path) -> Path:
    """Write seconds [`start`, `end`) of the PCM WAV file `source` to `target` (same rate, width and channels), unless
    `target` is already there and newer than `source`; the segments of CORAAL and Buckeye files that T1 uses.

    Raises:
        StimulusError: `source` is not a PCM WAV file, or the segment lies outside it.
    """
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    try:
        with wave.open(str(source), "rb") as reader:
            rate, frames = reader.getframerate(), reader.getnframes()
            first, last = round(start * rate), min(round(end * rate), frames)
            if not 0 <= first < last:
                raise StimulusError(f"{source}: the segment {start}-{end} s lies outside its {frames / rate:.2f} s; "
                                    "is this the file the SpEAT selection names?")
            reader.setpos(first)
            samples, params = reader.readframes(last - first), reader.getparams()
    except (wave.Error, EOFError) as error:
        raise StimulusError(f"{source} is not a PCM WAV file ({error}); give the corpus's original WAV files") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with wave.open(str(partial), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(samples)
    partial.replace(target)
    return target


def locate_corpus_files(spec: SpeatTestSpec, source: StimulusSource, *,
                        corpora: Mapping[str, str | os.PathLike] | None = None,
                        cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, str]:
    """The files of a published test's clips that come from corpora other than SAA and MESS (`CORPORA`), by
    stimulus id: ``<corpus folder>/<path>``, a segment of it cut into ``<stimulus cache>/segments/<corpus>/``.

    The corpus folder is `corpora` [name], ``$SPEAT_CORPUS_<NAME>``, or ``<source directory>/<name>/``. Without one,
    a corpus speat can download (the synthesized voices, CORAAL, TORGO) is fetched into the stimulus cache when the
    source downloads (``--stimuli speat``; `speat_metric.stimuli.corpora`). A file absent from the folder, or that
    could not be fetched, is left out (it is then reported missing with the others, or dropped with
    ``allow_missing``).

    Raises:
        CorpusUnavailableError: no folder for a corpus the test needs and no download for it (one line: the corpus,
            where to get it, the layout), before any download or model work.
    """
    needed: dict[str, list[BatteryClip]] = {}
    for stimulus_id in spec.stimulus_ids:
        clip = battery_clips().get(stimulus_id)
        if clip is not None and stimulus_id not in dict(spec.files):
            needed.setdefault(clip.corpus, []).append(clip)
    stimuli_dir = getattr(source, "path", None) if source.kind == "local" else None
    folders, fetched = {}, []
    for corpus in needed:
        folder = corpus_directory(corpus, corpora=corpora, stimuli_dir=stimuli_dir)
        if folder is not None:
            folders[corpus] = folder
        elif CORPORA[corpus].access == DOWNLOADABLE and isinstance(source, DownloadSource):
            fetched.append(corpus)
        else:
            raise CorpusUnavailableError(spec.name, CORPORA[corpus])
    files = {}
    for corpus in fetched:  # after every check above: nothing is fetched for a test that cannot load
        files.update(fetch_corpus_clips(corpus, needed[corpus], source, progress=progress))
    cache = Path(cache_dir).expanduser() if cache_dir is not None else getattr(source, "cache_dir", None)
    for corpus, clips in ((corpus, clips) for corpus, clips in needed.items() if corpus in folders):
        for clip in clips:
            path = folders[corpus] / clip.path
            if not path.is_file():
                continue
            if clip.start is not None and clip.end is not None:
                segments = Path(cache or default_cache_dir()) / "segments" / corpus
                path = cut_segment(path, clip.start, clip.end, segments / f"{clip.stimulus_id.partition('/')[2]}.wav")
            files[clip.stimulus_id] = str(path)
    return files


def fetch_corpus_clips(corpus: str, clips: Sequence[BatteryClip], source: DownloadSource, *,
                       progress: bool = True) -> dict[str, str]:
    """Download a downloadable corpus's clips into the source's cache (`speat_metric.stimuli.corpora`): their files
    by stimulus id. Clips that could not be fetched are logged with why and left out (then reported missing); with
    the source's ``keep_going``, so is a server that cannot be reached."""
    from speat_metric.stimuli import corpora as fetchers

    names = {clip.stimulus_id.partition("/")[2]: clip for clip in clips}
    options = {"cache_dir": source.cache_dir, "retry": source.retry, "progress": progress}
    try:
        if corpus == "synthesized":
            report = fetchers.fetch_synthesized_voices(list(names), **options)
        elif corpus == "coraal":
            report = fetchers.fetch_coraal_segments(
                [fetchers.CoraalSegment(name, clip.path, clip.start, clip.end) for name, clip in names.items()],
                **options)
        elif corpus == "torgo":
            report = fetchers.fetch_torgo_clips([fetchers.TorgoClip(name, clip.path) for name, clip in names.items()],
                                                **options)
        else:
            raise StimulusError(f"speat has no download for the corpus {corpus!r}")
    except DownloadError as error:
        if not source.keep_going:
            raise
        logger.warning("%s: %s", CORPORA[corpus].title, error)
        return {}
    for name, reason in report.missing.items():
        logger.warning("%s %s could not be fetched: %s", CORPORA[corpus].title, name, reason)
    return {names[name].stimulus_id: str(path) for name, path in report.files.items() if name in names}


def load_speat_test(
    test: str | SpeatTestSpec,
    source: str | os.PathLike | StimulusSource = "speat",
    *,
    allow_missing: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    profile: str | None = None,
    corpora: Mapping[str, str | os.PathLike] | None = None,
) -> StimulusSet:
    """All four roles of a SpEAT test in one set (each stimulus's ``role``: X, Y, A, B).

    Args:
        test: a published test's id (``"gender"``, ``"age"``, ``"native"``, ``"disability-torgo"`` ...: `speat
            stimuli list`), or a `SpeatTestSpec` (e.g. from `SpeatTestSpec.from_files`: only its stimuli without a
            file, such as the study's attributes, are looked up in the source).
        source: ``"speat"`` (download the public stimuli into `cache_dir`), ``"demo"`` (the embedded SYNTHETIC set,
            a pipeline check), a directory, a Hub dataset id ``owner/name[@revision]``, or a source object.
        allow_missing: drop missing stimuli instead of raising; they are recorded in the provenance.
        profile: the extraction profile (``speat2023`` selects the EU-Emotion rows as the SpEAT code does).
        corpora: the folders of your copies of corpora speat cannot download, e.g. ``{"uaspeech": "~/UASpeech"}``
            (else ``$SPEAT_CORPUS_<NAME>``, else ``<source directory>/<name>/``; layouts: docs/stimuli.md).

    Raises:
        CorpusUnavailableError: a corpus the test needs has no copy (before anything is fetched).
        MissingStimuliError: stimuli are missing and `allow_missing` is False.
        StimulusError: an unknown test or source, an empty audio file, or a group left with fewer than 2 stimuli.
        DownloadError: a download failed for another reason than the file being absent.

    Example:
        >>> from speat_metric.stimuli.selections import demo_available
        >>> if demo_available():
        ...     test = load_speat_test("gender", source="demo")
        ...     assert {stimulus.role for stimulus in test} == {"X", "Y", "A", "B"}
        ...     assert test.provenance.synthetic
    """
    source = resolve_source(source, cache_dir=cache_dir)
    if isinstance(test, SpeatTestSpec):
        spec = test
    elif not isinstance(test, str):
        raise StimulusError(f"test must be a test name or a SpeatTestSpec, got {type(test).__name__}")
    else:
        spec = (demo_speat_test(test, demo_dir=source.path) if isinstance(source, DemoSource)
                else get_speat_test(test, profile=profile))
    located = locate_corpus_files(spec, source, corpora=corpora, cache_dir=cache_dir, progress=progress)
    if located:
        spec = dataclasses.replace(spec, files=spec.files + tuple(located.items()))
    refs, pair_ids = {ref.stimulus_id: ref for ref in stimulus_refs(spec)}, spec.pair_ids
    if isinstance(source, DemoSource) and not spec.synthetic and any(ref.path is None for ref in refs.values()):
        raise StimulusError(
            f"the {spec.name!r} test{f' ({spec.definition_file})' if spec.definition_file else ''} has no a and b of "
            "its own, so its attributes are the study's Morgan Emotional Speech Set clips, which the synthetic demo "
            "set does not hold: add --stimuli speat (downloads them; `speat stimuli download` fetches them ahead), "
            "--stimuli DIR or --stimuli OWNER/NAME for a copy that holds them, or give a and b in the test's file")
    demo_columns: dict[str, dict[str, Any]] = {}
    if spec.synthetic:
        source = source if isinstance(source, DemoSource) else DemoSource()
        demo_columns = _demo_metadata_columns(source.path)
    elif all(ref.path is not None for ref in refs.values()):  # a custom test that brings all its files
        source = FileListSource()
    entries = [_Entry(refs[stimulus_id], spec.name, group.role, group.name, pair_ids.get(stimulus_id),
                      demo_columns.get(stimulus_id))
               for group in spec.groups for stimulus_id in group.stimulus_ids]
    return _build(entries, source, spec=spec, config_name=spec.name, description=spec.description,
                  citations=spec.citations, allow_missing=allow_missing, progress=progress)


def _reject_demo(source: StimulusSource, corpus: str) -> None:
    if isinstance(source, DemoSource):
        raise StimulusError(f"the demo set is synthetic and holds no {corpus} recordings; use "
                            "load_speat_test(name, source='demo') for the synthetic pipeline check")


def load_accent_archive(
    source: str | os.PathLike | StimulusSource = "speat",
    *,
    names: Sequence[str] | None = None,
    allow_missing: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> StimulusSet:
    """Speech Accent Archive recordings, one each, with the speakers' metadata (``role``, ``group`` and ``test`` are
    None: a speaker may serve in several tests). The other arguments are `load_speat_test`'s (not ``"demo"``).

    Args:
        names: recording names (e.g. ``["english102", "korean1"]``); default every recording of the three tests.
            Names outside the selections are allowed; their metadata columns are then None.
    """
    source = resolve_source(source, cache_dir=cache_dir)
    _reject_demo(source, "Speech Accent Archive")
    three = {s for name in ("gender", "age", "native") for s in get_speat_test(name).stimulus_ids}
    chosen = sorted(n for n in saa_speakers() if f"saa/{n}" in three) if names is None else list(names)
    bad = [name for name in chosen if not isinstance(name, str) or not name or "/" in name or name.endswith(".mp3")]
    if bad:
        raise StimulusError(f"recording names must be file stems like 'english102', got {bad!r}")
    entries = [_Entry(_public_ref("saa", name)) for name in chosen]
    return _build(entries, source, spec=None, config_name="accent_archive",
                  description="Speech Accent Archive recordings of the English 'Please call Stella' paragraph, "
                  "as selected by the SpEAT study.", citations=(SPEAT_CITATION, SAA_CITATION),
                  allow_missing=allow_missing, progress=progress)


def load_morgan(
    source: str | os.PathLike | StimulusSource = "speat",
    *,
    codes: Sequence[str] | str = "attributes",
    allow_missing: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> StimulusSet:
    """Morgan Emotional Speech Set clips, one each, with talker, emotion, cue and mean valence rating; clips of
    SpEAT's attribute groups have ``role`` A or B, ``group`` pleasant or unpleasant and ``test`` ``"attributes"``.
    The other arguments are `load_speat_test`'s (not ``"demo"``).

    Args:
        codes: ``"attributes"`` (the 120 clips of SpEAT's A and B groups), ``"all"`` (all 1,800 clips), or a list
            of clip codes such as ``["AF1M24"]``.
    """
    source = resolve_source(source, cache_dir=cache_dir)
    _reject_demo(source, "Morgan Emotional Speech Set")
    pleasant, unpleasant = attribute_groups()
    if codes == "attributes":
        chosen = [stimulus_id.partition("/")[2] for stimulus_id in pleasant.stimulus_ids + unpleasant.stimulus_ids]
    elif codes == "all":
        chosen = sorted(mess_clips())
    elif isinstance(codes, str):
        raise StimulusError(f"codes must be 'attributes', 'all' or a list of clip codes, got {codes!r}")
    else:
        chosen = list(codes)
    unknown = [code for code in chosen if code not in mess_clips()]
    if unknown:
        raise StimulusError(f"unknown MESS clip codes {unknown!r}: codes look like 'AF1M24' (emotion A/C/H/S, talker "
                            "F1-F3/M1-M3, cue M/T/V, sentence number)")
    roles = {**{s: ("A", pleasant.name) for s in pleasant.stimulus_ids},
             **{s: ("B", unpleasant.name) for s in unpleasant.stimulus_ids}}
    entries = []
    for code in chosen:
        ref = _public_ref("mess", code)
        role, group = roles.get(ref.stimulus_id, (None, None))
        entries.append(_Entry(ref, "attributes" if role else None, role, group))
    return _build(entries, source, spec=None, config_name="morgan",
                  description="Morgan Emotional Speech Set clips with their mean listener valence ratings; SpEAT's "
                  "attributes are, per talker, the 10 highest-valence (pleasant, A) and 10 lowest (unpleasant, B).",
                  citations=(SPEAT_CITATION, MESS_CITATION), allow_missing=allow_missing, progress=progress)


def stimulus_provenance(stimuli: StimulusSet) -> dict[str, Any]:
    """Where a set's stimuli come from, as records store it (`StimulusProvenance.to_dict`); a StimulusError if
    `stimuli` is not a `StimulusSet` (an exported ``datasets.Dataset`` carries no provenance)."""
    if not isinstance(stimuli, StimulusSet):
        raise StimulusError("this is not a set of stimuli made by load_speat_test, load_accent_archive or "
                            "load_morgan (an exported datasets.Dataset carries no provenance); load the stimuli with "
                            "those and read .provenance")
    return stimuli.provenance.to_dict()
