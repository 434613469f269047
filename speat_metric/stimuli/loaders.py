"""Stimuli as ``datasets.Dataset`` objects: one row per stimulus, with its audio file, SHA-256, role and metadata.

`load_speat_test` gives all four roles of a test in one call; `load_accent_archive` and `load_morgan` give
recordings of one corpus. Every loader takes a ``source`` (see `speat_metric.stimuli.sources.resolve_source`):
``"demo"``, ``"speat"`` (public download through the cache), a directory, a Hub dataset id, or a source object.

Columns (`STIMULUS_FEATURES`; a column that does not apply to a row is None):

- ``stimulus_id`` (``saa/english102``, ``mess/AF1M24``, ``demo-gender-female-01``, ``custom/<stem>``), ``corpus``
  (``saa``, ``mess``, ``demo``, ``custom``), ``name`` (recording name or clip code);
- ``audio``: ``datasets.Audio(decode=False)``, i.e. ``{"path": ..., "bytes": None}``: never decoded by ``datasets``
  (no torchcodec needed); decode with ``speat_metric.audio.load_audio(row["audio"]["path"])``;
- ``sha256`` and ``num_bytes`` of the audio file (the embedding cache keys on the SHA-256);
- ``test``, ``role`` (X, Y, A, B), ``group`` (e.g. ``female``), ``pair_id`` (matched designs);
- Speech Accent Archive: ``speaker_id`` (the archive's speakerid), ``age``, ``sex``, ``birthplace``,
  ``native_language``, ``text`` (the paragraph read); Morgan Emotional Speech Set: ``speaker_id`` (the talker, e.g.
  ``F1``), ``sex``, ``emotion``, ``cue``, ``valence`` (mean listener rating, 0-100).

Missing stimuli raise `MissingStimuliError` listing them and how to obtain them, unless ``allow_missing=True``: then
they are dropped and recorded. The record is the provenance in the dataset's ``DatasetInfo``: its description ends
with a line ``speat-provenance: {json}`` (test, source, selection versions, dropped and unpaired ids), which survives
``filter``, ``map``, ``save_to_disk`` and ``push_to_hub``; `stimulus_provenance` returns it as a dict for the
pipeline to copy into every result. ``DatasetInfo.download_checksums`` lists every audio file's size and SHA-256.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from speat_metric import __version__
from speat_metric.audio import AudioDecodeError, check_audio
from speat_metric.stimuli.download import file_sha256
from speat_metric.stimuli.errors import (
    DOWNLOADED_FILE_HINT,
    MissingStimuliError,
    StimulusError,
    UnreadableStimulusError,
)
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
    get_speat_test,
    mess_clips,
    mess_stimulus_id,
    saa_speakers,
    saa_stimulus_id,
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

PROVENANCE_PREFIX = "speat-provenance: "
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
class _Entry:
    """A wanted stimulus and the role it plays, before its audio is found."""

    ref: StimulusRef
    test: str | None = None
    role: str | None = None
    group: str | None = None
    pair_id: int | None = None
    metadata: dict[str, Any] | None = None  # the metadata columns; None: look them up in the selections


def stimulus_refs(spec: SpeatTestSpec) -> list[StimulusRef]:
    """The stimuli of a test as `StimulusRef` objects, in role order (X, Y, A, B).

    Raises:
        StimulusError: an id is neither ``saa/<name>`` nor ``mess/<code>`` and the test gives no file for it.
    """
    files = dict(spec.files)
    speakers = saa_speakers()
    refs = []
    for stimulus_id in spec.stimulus_ids:
        corpus, _, name = stimulus_id.partition("/")
        if stimulus_id in files:
            refs.append(StimulusRef(stimulus_id, "demo" if spec.synthetic else "custom", stimulus_id,
                                    path=files[stimulus_id]))
        elif corpus == "saa" and name:
            speaker = speakers.get(name)
            refs.append(StimulusRef(stimulus_id, "saa", name, speaker.speaker_id if speaker else None))
        elif corpus == "mess" and name:
            refs.append(StimulusRef(stimulus_id, "mess", name))
        else:
            raise StimulusError(f"test {spec.name!r}: stimulus {stimulus_id!r} has no audio file and is not a public "
                                "stimulus (saa/<name> or mess/<code>); give its file with SpeatTestSpec.from_files")
    return refs


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
    return row


def _demo_metadata_columns(demo_dir: Path) -> dict[str, dict[str, Any]]:
    """Metadata columns of every clip of the demo set in `demo_dir`, by stimulus id (empty if there is none)."""
    columns: dict[str, dict[str, Any]] = {}
    if not demo_available(demo_dir):
        return columns
    for row in demo_metadata(demo_dir):
        values: dict[str, Any] = dict.fromkeys(_METADATA_COLUMNS)
        values.update(speaker_id=row["voice"] or None, sex=row["sex"] or None, text=row["text"] or None)
        columns[row["stimulus_id"]] = values
    return columns


def _license(citations: Sequence[Citation], synthetic: bool) -> str:
    if synthetic:
        return "synthetic speech made by speat's generator; see speat_metric/data/demo/README.md"
    parts = []
    if SAA_CITATION in citations:
        parts.append("Speech Accent Archive recordings: CC BY-NC-SA 2.0")
    if MESS_CITATION in citations:
        parts.append("Morgan Emotional Speech Set clips: see the Zenodo record's licence")
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
           description: str, citations: Sequence[Citation], allow_missing: bool, progress: bool) -> datasets.Dataset:
    """Resolve the entries' audio, check it, and assemble the dataset with its provenance."""
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
    pair_sizes: dict[int, int] = {}
    for entry in kept:
        if entry.pair_id is not None:
            pair_sizes[entry.pair_id] = pair_sizes.get(entry.pair_id, 0) + 1
    unpaired = sorted(e.ref.stimulus_id for e in kept if e.pair_id is not None and pair_sizes[e.pair_id] < 2)

    rows, checksums = [], {}
    for entry in kept:
        path = resolution.files[entry.ref.stimulus_id]
        sha256 = resolution.sha256.get(entry.ref.stimulus_id) or file_sha256(path)
        size = path.stat().st_size
        checksums[str(path)] = {"num_bytes": size, "checksum": f"sha256:{sha256}"}
        rows.append({
            "stimulus_id": entry.ref.stimulus_id, "corpus": entry.ref.corpus, "name": entry.ref.name,
            "audio": {"bytes": None, "path": str(path)}, "sha256": sha256, "num_bytes": size,
            "test": entry.test, "role": entry.role, "group": entry.group,
            "pair_id": None if entry.ref.stimulus_id in unpaired else entry.pair_id,
            **(entry.metadata if entry.metadata is not None else _metadata(entry.ref)),
        })
    dropped = {stimulus_id: resolution.missing[stimulus_id] for stimulus_id in sorted(resolution.missing)}
    study = any(entry.ref.corpus in ("saa", "mess") for entry in entries)  # the study's selections are used
    provenance = {
        "test": spec.name if spec is not None else None,
        "config": config_name,
        "synthetic": synthetic,
        "source": source.describe(),
        "selection_versions": selection_versions() if study else {},
        "requested": len(entries),
        "loaded": len(kept),
        "group_sizes": {role: sum(e.role == role for e in kept) for role in "XYAB"} if spec is not None else {},
        "dropped_ids": list(dropped),
        "dropped_reasons": dropped,
        "unpaired_ids": unpaired,
        "speat_version": __version__,
    }
    if spec is not None and spec.definition_file is not None:  # a custom test: its file, and each clip's file in it
        base = Path(spec.definition_file).resolve().parent
        provenance["definition"] = {"file": spec.definition_file, "sha256": spec.definition_sha256,
                                    "files": {stimulus_id: os.path.relpath(path, base)
                                              for stimulus_id, path in spec.files}}
    text = ([f"{SYNTHETIC_NOTICE}."] if synthetic and SYNTHETIC_NOTICE not in description else [])
    text += [description, f"Source: {source}."]
    if dropped:
        text.append(f"Dropped because missing (allow_missing=True): {', '.join(dropped)}.")
    text.append(PROVENANCE_PREFIX + json.dumps(provenance, sort_keys=True))
    info = datasets.DatasetInfo(
        description="\n\n".join(text), citation="\n".join(c.bibtex for c in citations),
        homepage=citations[0].url if citations else "", license=_license(citations, synthetic),
        features=STIMULUS_FEATURES, dataset_name="speat-stimuli", config_name=config_name,
        version=SELECTIONS_VERSION, download_checksums=checksums,
    )
    # Built from an Arrow table: encoding through datasets.Audio would import torchcodec even with decode=False.
    table = pa.Table.from_pylist(rows, schema=STIMULUS_FEATURES.arrow_schema)
    return datasets.Dataset(datasets.table.InMemoryTable(table), info=info)


def load_speat_test(
    test: str | SpeatTestSpec,
    source: str | os.PathLike | StimulusSource = "speat",
    *,
    allow_missing: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> datasets.Dataset:
    """All four roles of a SpEAT test in one dataset (column ``role``: X, Y, A, B).

    Args:
        test: ``"gender"``, ``"age"``, ``"native"``, or a `SpeatTestSpec` (e.g. from `SpeatTestSpec.from_files`:
            its files are used as given; only its stimuli without a file, such as the study's attributes, are looked
            up in the source).
        source: ``"speat"`` (download the public stimuli into the cache), ``"demo"`` (the embedded SYNTHETIC set, a
            pipeline check that needs no network), a directory, a Hub dataset id ``owner/name[@revision]``, or a
            source object.
        allow_missing: drop missing stimuli instead of raising; they are recorded in the provenance.
        cache_dir: the stimulus cache for ``source="speat"``.
        progress: show progress bars while downloading.

    Returns:
        One row per stimulus, in role order; see the module docstring for the columns and the provenance.

    Raises:
        MissingStimuliError: stimuli are missing and `allow_missing` is False (the message lists them and how to get
            them).
        StimulusError: an unknown test or source, an empty audio file, or a group left with fewer than 2 stimuli.
        DownloadError: a download failed for another reason than the file being absent.

    Example:
        >>> from speat_metric.stimuli.selections import demo_available
        >>> if demo_available():
        ...     dataset = load_speat_test("gender", source="demo")
        ...     assert set(dataset["role"]) == {"X", "Y", "A", "B"}
        ...     assert stimulus_provenance(dataset)["synthetic"]
    """
    source = resolve_source(source, cache_dir=cache_dir)
    if isinstance(test, SpeatTestSpec):
        spec = test
    elif not isinstance(test, str):
        raise StimulusError(f"test must be a test name or a SpeatTestSpec, got {type(test).__name__}")
    else:
        spec = demo_speat_test(test, demo_dir=source.path) if isinstance(source, DemoSource) else get_speat_test(test)
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
) -> datasets.Dataset:
    """Speech Accent Archive recordings, one row each, with the speakers' metadata.

    Args:
        source: where the audio is (see `load_speat_test`); not ``"demo"``.
        names: recording names (e.g. ``["english102", "korean1"]``); default every recording of the three tests.
            Names outside the selections are allowed; their metadata columns are then None.
        allow_missing: drop missing recordings instead of raising; they are recorded in the provenance.
        cache_dir: the stimulus cache for ``source="speat"``.
        progress: show progress bars while downloading.

    Returns:
        One row per recording (``role``, ``group`` and ``test`` are None: a speaker may serve in several tests).

    Raises:
        MissingStimuliError: recordings are missing and `allow_missing` is False.
        StimulusError: a bad name or source, or an empty audio file.
    """
    source = resolve_source(source, cache_dir=cache_dir)
    _reject_demo(source, "Speech Accent Archive")
    chosen = sorted(saa_speakers()) if names is None else list(names)
    bad = [name for name in chosen if not isinstance(name, str) or not name or "/" in name or name.endswith(".mp3")]
    if bad:
        raise StimulusError(f"recording names must be file stems like 'english102', got {bad!r}")
    speakers = saa_speakers()
    entries = [_Entry(StimulusRef(saa_stimulus_id(name), "saa", name,
                                  speakers[name].speaker_id if name in speakers else None)) for name in chosen]
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
) -> datasets.Dataset:
    """Morgan Emotional Speech Set clips, one row each, with talker, emotion, cue and mean valence rating.

    Args:
        source: where the audio is (see `load_speat_test`); not ``"demo"``.
        codes: ``"attributes"`` (the 120 clips of SpEAT's pleasant A and unpleasant B groups), ``"all"`` (all
            1,800 clips), or a list of clip codes such as ``["AF1M24"]``.
        allow_missing: drop missing clips instead of raising; they are recorded in the provenance.
        cache_dir: the stimulus cache for ``source="speat"``.
        progress: show progress bars while downloading.

    Returns:
        One row per clip; clips of SpEAT's attribute groups have ``role`` A or B and ``group`` pleasant or
        unpleasant (``test`` is ``"attributes"``: they serve all three tests).

    Raises:
        MissingStimuliError: clips are missing and `allow_missing` is False.
        StimulusError: an unknown code or a bad source, or an empty audio file.
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
        stimulus_id = mess_stimulus_id(code)
        role, group = roles.get(stimulus_id, (None, None))
        entries.append(_Entry(StimulusRef(stimulus_id, "mess", code), "attributes" if role else None, role, group))
    return _build(entries, source, spec=None, config_name="morgan",
                  description="Morgan Emotional Speech Set clips with their mean listener valence ratings; SpEAT's "
                  "attributes are, per talker, the 10 highest-valence (pleasant, A) and 10 lowest (unpleasant, B).",
                  citations=(SPEAT_CITATION, MESS_CITATION), allow_missing=allow_missing, progress=progress)


def stimulus_provenance(dataset: datasets.Dataset) -> dict[str, Any]:
    """Where a dataset's stimuli come from, for copying into every result made from it.

    Args:
        dataset: a dataset made by `load_speat_test`, `load_accent_archive` or `load_morgan` (possibly filtered,
            mapped, saved and reloaded).

    Returns:
        ``test``, ``config``, ``synthetic``, ``source`` (kind and location; the Hub commit for Hub datasets),
        ``selection_versions``, ``requested``, ``loaded``, ``group_sizes`` (at load time), ``dropped_ids`` with
        ``dropped_reasons``, ``unpaired_ids`` (paired stimuli whose partner was dropped) and ``speat_version``.
        A concatenation of several such datasets gives ``{"parts": [one dict per part]}``.

    Raises:
        StimulusError: the dataset was not made by these loaders.
    """
    lines = [line for line in (dataset.info.description or "").splitlines() if line.startswith(PROVENANCE_PREFIX)]
    if not lines:
        raise StimulusError("this dataset carries no speat provenance in its info (it was not made by "
                            "load_speat_test, load_accent_archive or load_morgan); load the stimuli with those")
    parts = [json.loads(line[len(PROVENANCE_PREFIX):]) for line in lines]
    return parts[0] if len(parts) == 1 else {"parts": parts}

