"""Build a SpEAT test from any corpus with speaker metadata (``speat tests build``; docs/building-tests.md).

A corpus is a metadata table (Common Voice's ``validated.tsv``: client_id, path, sentence, age, gender, accents,
locale; any .tsv or .csv with a speaker and a path column) or a Hugging Face dataset (a `save_to_disk` folder or a
Hub id, its audio column read with ``Audio(decode=False)``). The selection, given a `BuildSpec`:

1. Rows are kept when their ``locale`` is `BuildSpec.locale` (if given) and they fall in group X or Y
   (`GroupDefinition`: ``gender=female``, ``age=teens,twenties``, ``accents=France;gender=male``). A speaker whose
   clips fall in both groups is left out of both.
2. Durations are read from the audio headers (soundfile, no decoding); clips outside [min, max] seconds are dropped.
3. One clip per speaker: a seeded choice among the speaker's remaining clips (sorted by path first).
4. N speakers per group: without matching, a seeded sample of each group. With matching (`match_speakers`), X
   speakers in seeded order each take the closest unused Y speaker (exact: equal values on every match column;
   nearest: the smallest summed distance, ties to the earlier Y in seeded order), until N pairs; the pairs are the
   test's matched pairs.
5. Attributes: the study's MESS sets (the JSON leaves out ``a`` and ``b``), or clips of an emotional speech table,
   by emotion label (`EMOTION_VALENCE`) or by valence rating (the M highest and the M lowest).

A group with fewer than N speakers after filtering is a `StimulusError` saying how many were found. Every random
choice comes from ``random.Random`` seeded with a string of the seed and the choice's purpose, over sorted inputs, so
the provenance (`BuildResult.provenance`) rebuilds the identical selection.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from speat_metric.stimuli.errors import StimulusError

AGE_BANDS = ("teens", "twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties")
"""Common Voice's age bands, in order: nearest matching counts the bands between two speakers."""

EMOTION_VALENCE = MappingProxyType({
    **dict.fromkeys(("pleasant", "happy", "happiness", "joy", "pleasant_surprise", "ps", "amused", "excited"),
                    "pleasant"),
    **dict.fromkeys(("unpleasant", "angry", "anger", "sad", "sadness", "disgust", "fear", "fearful", "contempt"),
                    "unpleasant"),
    **dict.fromkeys(("neutral", "calm", "surprise", "surprised", "boredom", "other"), None),
})
"""Emotion label (lower case) -> attribute group; None: left out (no clear valence). An unknown label is an error."""

MATCH_RULES = ("exact", "nearest")
TABLE_SUFFIXES = {".tsv": "\t", ".csv": ","}


@dataclass(frozen=True)
class GroupDefinition:
    """Which rows make a target group: every (column, allowed values) condition must hold.

    A cell matches a value when, stripped and lower-cased, it equals it or one of its ``|``-separated parts does
    (Common Voice lists several accents in one cell)."""

    conditions: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, text: str, option: str = "--x") -> GroupDefinition:
        """``"gender=female"``, ``"age=teens,twenties"``, ``"accents=France;gender=male"``.

        Example:
            >>> GroupDefinition.parse("age=teens,twenties;gender=female").conditions
            (('age', ('teens', 'twenties')), ('gender', ('female',)))
        """
        conditions = []
        for part in str(text).split(";"):
            column, equals, values = part.partition("=")
            allowed = tuple(value.strip() for value in values.split(",") if value.strip())
            if not equals or not column.strip() or not allowed:
                raise StimulusError(f"{option} {text!r}: write COLUMN=VALUE[,VALUE...] with conditions joined by ';', "
                                    "e.g. gender=female or age=teens,twenties;gender=male")
            conditions.append((column.strip(), allowed))
        return cls(tuple(conditions))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.conditions)

    @property
    def text(self) -> str:
        return ";".join(f"{column}={','.join(values)}" for column, values in self.conditions)

    @property
    def name(self) -> str:
        """The group's name in tables: its values, e.g. ``female`` or ``teens+twenties female``."""
        return " ".join("+".join(values) for _, values in self.conditions)

    def with_condition(self, column: str, value: str) -> GroupDefinition:
        return GroupDefinition((*self.conditions, (column, (value,))))

    def holds(self, row: Mapping[str, str]) -> bool:
        return all(_cell_matches(row.get(column, ""), values) for column, values in self.conditions)


def _cell_matches(cell: str, values: Sequence[str]) -> bool:
    wanted = {value.lower() for value in values}
    cell = cell.strip().lower()
    return cell in wanted or any(part.strip() in wanted for part in cell.split("|"))


@dataclass(frozen=True)
class AttributeSpec:
    """Where A and B come from: ``mess`` (the study's sets) or a table with an emotion or a valence column.

    `count`: clips per attribute group (a seeded sample by emotion; the highest and lowest by valence); None takes
    every labelled clip by emotion, and N (the targets' per-group) by valence."""

    source: str = "mess"
    emotion_column: str | None = None
    valence_column: str | None = None
    count: int | None = None

    @property
    def is_mess(self) -> bool:
        return self.source == "mess"


@dataclass(frozen=True)
class BuildSpec:
    """Everything that decides a selection (``speat tests build``'s options, parsed once; the provenance's core).

    `corpus` is a table path, a `save_to_disk` folder or a Hub dataset id; `clips_dir` where a table's ``path``
    column points (None: ``clips/`` beside the table if it exists, else the table's folder)."""

    corpus: str
    x: GroupDefinition
    y: GroupDefinition
    per_group: int
    name: str
    seed: int = 0
    match: tuple[str, ...] = ()
    match_rule: str = "exact"
    min_seconds: float | None = None
    max_seconds: float | None = None
    locale: str | None = None
    attributes: AttributeSpec = field(default_factory=AttributeSpec)
    by: tuple[str, tuple[str, ...]] | None = None
    clips_dir: str | None = None
    speaker_column: str = "client_id"
    path_column: str = "path"
    audio_column: str = "audio"
    split: str = "train"
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.per_group < 2:
            raise StimulusError(f"--per-group must be at least 2 (SpEAT divides by a standard deviation), got "
                                f"{self.per_group}")
        if self.seed < 0:
            raise StimulusError(f"--seed must be a non-negative whole number, got {self.seed}")
        if self.match_rule not in MATCH_RULES:
            raise StimulusError(f"--match-rule must be one of {', '.join(MATCH_RULES)}, got {self.match_rule!r}")
        for option, value in (("--min-seconds", self.min_seconds), ("--max-seconds", self.max_seconds)):
            if value is not None and value < 0:
                raise StimulusError(f"{option} must not be negative, got {value}")
        if self.min_seconds is not None and self.max_seconds is not None and self.min_seconds > self.max_seconds:
            raise StimulusError(f"--min-seconds {self.min_seconds} exceeds --max-seconds {self.max_seconds}")
        if self.by is not None and len(self.by[1]) != 2:
            raise StimulusError(f"--by {self.by[0]}={','.join(self.by[1])}: give exactly two values, e.g. "
                                "--by gender=female,male (one test per value; the interaction is their difference)")
        attributes = self.attributes
        if not attributes.is_mess and (attributes.emotion_column is None) == (attributes.valence_column is None):
            raise StimulusError(f"--attributes {attributes.source}: give exactly one of --emotion-column and "
                                "--valence-column")
        if attributes.count is not None and attributes.count < 2:
            raise StimulusError(f"--attribute-count must be at least 2, got {attributes.count}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(x=self.x.text, y=self.y.text, match=list(self.match),
                    by=None if self.by is None else f"{self.by[0]}={','.join(self.by[1])}")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildSpec:
        values = dict(data)
        by = values.get("by")
        if by is not None:
            column, _, cells = by.partition("=")
            values["by"] = (column, tuple(cells.split(",")))
        return cls(**{**values, "x": GroupDefinition.parse(values["x"]), "y": GroupDefinition.parse(values["y"]),
                      "match": tuple(values.get("match", ())), "attributes": AttributeSpec(**values["attributes"])})


@dataclass(frozen=True)
class Clip:
    """One row of a corpus: its speaker, its audio (a file, or bytes of a dataset row), its metadata."""

    stimulus_id: str
    speaker: str
    path: str
    columns: Mapping[str, str]
    audio_bytes: bytes | None = None

    def seconds(self) -> float:
        """The clip's duration from its header (soundfile reads no samples)."""
        import soundfile

        try:
            info = soundfile.info(io.BytesIO(self.audio_bytes) if self.audio_bytes is not None else self.path)
        except (RuntimeError, OSError) as error:  # soundfile.LibsndfileError is a RuntimeError
            raise StimulusError(f"cannot read the audio header of {self.path!r} ({self.stimulus_id}): "
                                f"{error}") from None
        return info.frames / info.samplerate


@dataclass(frozen=True)
class Corpus:
    """A corpus's clips and what identifies it for the provenance (`identity`: kind, name, sha256 or fingerprint)."""

    clips: tuple[Clip, ...]
    columns: tuple[str, ...]
    identity: dict[str, Any]


def read_corpus(spec: BuildSpec, base: Path = Path()) -> Corpus:
    """The clips of `spec.corpus` (relative paths against `base`): a .tsv/.csv table, a `save_to_disk` folder, or a
    Hub dataset id; a StimulusError naming the corpus when it is none of these or lacks a column."""
    location = base / spec.corpus
    if location.is_file():
        return _read_table(location, spec, base)
    if location.suffix.lower() in TABLE_SUFFIXES:
        raise StimulusError(f"table {str(location)!r} does not exist")
    if location.is_dir():
        import datasets

        return _dataset_corpus(datasets.load_from_disk(str(location)), spec, "dataset_folder")
    if spec.corpus.count("/") == 1 and not spec.corpus.startswith((".", "/")):
        import datasets

        return _dataset_corpus(datasets.load_dataset(spec.corpus, split=spec.split, revision=spec.revision), spec,
                               "hub_dataset")
    raise StimulusError(f"corpus {spec.corpus!r} is neither a .tsv/.csv table, a dataset folder (save_to_disk) nor a "
                        "Hub dataset id owner/name")


def _read_table(path: Path, spec: BuildSpec, base: Path) -> Corpus:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise StimulusError(f"table {str(path)!r}: give a .tsv (Common Voice) or .csv file")
    raw = path.read_bytes()
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=TABLE_SUFFIXES[path.suffix.lower()],
                            quoting=csv.QUOTE_NONE if path.suffix.lower() == ".tsv" else csv.QUOTE_MINIMAL)
    columns = tuple(reader.fieldnames or ())
    _require_columns(columns, (spec.speaker_column, spec.path_column), f"table {str(path)!r}")
    if spec.clips_dir is not None:
        clips_dir = base / spec.clips_dir
    else:
        clips_dir = path.parent / "clips" if (path.parent / "clips").is_dir() else path.parent
    clips = tuple(Clip(_stimulus_id(path.stem, row[spec.path_column]), row[spec.speaker_column],
                       str(clips_dir / row[spec.path_column]), MappingProxyType(dict(row)))
                  for row in reader)
    return Corpus(clips, columns, {"kind": "table", "sha256": hashlib.sha256(raw).hexdigest(), "rows": len(clips)})


def _dataset_corpus(dataset: Any, spec: BuildSpec, kind: str) -> Corpus:
    import datasets

    columns = tuple(dataset.column_names)
    _require_columns(columns, (spec.speaker_column, spec.audio_column), f"dataset {spec.corpus!r}")
    dataset = dataset.cast_column(spec.audio_column, datasets.Audio(decode=False))
    label = PurePosixPath(spec.corpus).name
    clips = []
    for index, row in enumerate(dataset):
        audio = row[spec.audio_column]
        name = audio.get("path") or f"row{index}.wav"
        metadata = {column: "" if row[column] is None else str(row[column]) for column in columns
                    if column != spec.audio_column}
        clips.append(Clip(_stimulus_id(label, f"{index}-{PurePosixPath(name).name}"), str(row[spec.speaker_column]),
                          name, MappingProxyType(metadata), audio.get("bytes")))
    identity = {"kind": kind, "fingerprint": getattr(dataset, "_fingerprint", None), "rows": len(clips)}
    if kind == "hub_dataset":
        identity.update(split=spec.split, revision=spec.revision)
    return Corpus(tuple(clips), columns, identity)


def _stimulus_id(corpus: str, path: str) -> str:
    return f"{corpus}/{PurePosixPath(path).with_suffix('').as_posix()}"


def _require_columns(columns: Sequence[str], required: Sequence[str], what: str) -> None:
    missing = [column for column in required if column not in columns]
    if missing:
        raise StimulusError(f"{what} has no column {', '.join(missing)} (it has {', '.join(columns) or 'none'}); "
                            "name the right one with --speaker-column / --path-column / --audio-column or fix the "
                            "group definition")


@dataclass(frozen=True)
class TargetSelection:
    """The chosen X and Y clips (one per speaker), their pairs, and how many speakers each group had."""

    x: tuple[Clip, ...]
    y: tuple[Clip, ...]
    pairs: tuple[tuple[str, str], ...]
    speakers_found: dict[str, int]


def select_targets(corpus: Corpus, spec: BuildSpec, x: GroupDefinition, y: GroupDefinition,
                   tag: str = "") -> TargetSelection:
    """Steps 1-4 of the module docstring for groups `x` and `y` (`tag` keeps each intersectional cell's draws apart)."""
    needed = {*x.columns, *y.columns, *spec.match} | ({"locale"} if spec.locale else set())
    _require_columns(corpus.columns, sorted(needed), f"corpus {spec.corpus!r}")
    kept = [clip for clip in corpus.clips if not spec.locale or clip.columns.get("locale", "") == spec.locale]
    in_x = {clip.speaker for clip in kept if x.holds(clip.columns)}
    in_y = {clip.speaker for clip in kept if y.holds(clip.columns)}
    groups = {"X": [clip for clip in kept if clip.speaker in in_x - in_y and x.holds(clip.columns)],
              "Y": [clip for clip in kept if clip.speaker in in_y - in_x and y.holds(clip.columns)]}
    if spec.min_seconds is not None or spec.max_seconds is not None:
        low, high = spec.min_seconds or 0.0, spec.max_seconds if spec.max_seconds is not None else float("inf")
        groups = {role: [clip for clip in clips if low <= clip.seconds() <= high] for role, clips in groups.items()}
    chosen = {role: one_clip_per_speaker(clips, random.Random(f"{spec.seed}:{tag}:clip:{role}"))
              for role, clips in groups.items()}
    found = {role: len(clips) for role, clips in chosen.items()}
    for role, definition in (("X", x), ("Y", y)):
        if found[role] < spec.per_group:
            raise StimulusError(
                f"group {role} ({definition.text}) has {found[role]} speaker(s) after filtering "
                f"({_filters_text(spec)}); --per-group asks for {spec.per_group}: lower --per-group or widen the "
                f"group{_values_hint(corpus, definition)}")
    order = {role: seeded_order(clips, random.Random(f"{spec.seed}:{tag}:order:{role}"))
             for role, clips in chosen.items()}
    if not spec.match:
        return TargetSelection(tuple(order["X"][:spec.per_group]), tuple(order["Y"][:spec.per_group]), (), found)
    pairs = match_speakers(order["X"], order["Y"], spec.match, spec.match_rule, spec.per_group)
    if len(pairs) < spec.per_group:
        raise StimulusError(f"only {len(pairs)} X-Y pair(s) match exactly on {', '.join(spec.match)} "
                            f"({found['X']} X and {found['Y']} Y speakers after filtering); --per-group asks for "
                            f"{spec.per_group}: lower it, match on fewer columns, or use --match-rule nearest")
    return TargetSelection(tuple(x_clip for x_clip, _ in pairs), tuple(y_clip for _, y_clip in pairs),
                           tuple((x_clip.stimulus_id, y_clip.stimulus_id) for x_clip, y_clip in pairs), found)


def one_clip_per_speaker(clips: Sequence[Clip], rng: random.Random) -> list[Clip]:
    """One clip per speaker, by a seeded choice among that speaker's clips sorted by path; speakers sorted."""
    by_speaker: dict[str, list[Clip]] = {}
    for clip in clips:
        by_speaker.setdefault(clip.speaker, []).append(clip)
    return [rng.choice(sorted(by_speaker[speaker], key=lambda clip: clip.path)) for speaker in sorted(by_speaker)]


def seeded_order(clips: Sequence[Clip], rng: random.Random) -> list[Clip]:
    """`clips` sorted by stimulus id, then shuffled by `rng`: the same order for the same seed, whatever the input
    order."""
    ordered = sorted(clips, key=lambda clip: clip.stimulus_id)
    rng.shuffle(ordered)
    return ordered


def match_speakers(x: Sequence[Clip], y: Sequence[Clip], columns: Sequence[str], rule: str,
                   count: int) -> list[tuple[Clip, Clip]]:
    """Up to `count` (X, Y) pairs: each X in order takes the unused Y of the smallest `match_distance` (the first in
    order among equals); ``exact`` accepts distance 0 only, ``nearest`` any. Greedy is a maximum matching for exact
    (speakers with equal values are interchangeable)."""
    unused = list(y)
    pairs = []
    for x_clip in x:
        if len(pairs) == count or not unused:
            break
        distances = [match_distance(x_clip, y_clip, columns) for y_clip in unused]
        best = min(range(len(unused)), key=distances.__getitem__)
        if rule == "exact" and distances[best] > 0:
            continue
        pairs.append((x_clip, unused.pop(best)))
    return pairs


def match_distance(first: Clip, second: Clip, columns: Sequence[str]) -> float:
    """Summed distance over `columns`: numbers by their absolute difference, Common Voice age bands by the number of
    bands apart, other values 0 when equal (case-insensitive) and 1 otherwise.

    Example:
        >>> a = Clip("a", "s1", "a.wav", {"age": "twenties", "accents": "France", "years": "31"})
        >>> b = Clip("b", "s2", "b.wav", {"age": "forties", "accents": "france", "years": "28.5"})
        >>> match_distance(a, b, ["age", "accents", "years"])
        4.5
    """
    total = 0.0
    for column in columns:
        left, right = (clip.columns.get(column, "").strip().lower() for clip in (first, second))
        if left in AGE_BANDS and right in AGE_BANDS:
            total += abs(AGE_BANDS.index(left) - AGE_BANDS.index(right))
            continue
        try:
            total += abs(float(left) - float(right))
        except ValueError:
            total += float(left != right)
    return total


def select_attributes(spec: BuildSpec, base: Path = Path()) -> tuple[tuple[Clip, ...], tuple[Clip, ...]]:
    """A and B clips from an emotional speech table (`AttributeSpec`); empty for the study's MESS sets."""
    attributes = spec.attributes
    if attributes.is_mess:
        return (), ()
    table = base / attributes.source
    if not table.is_file():
        raise StimulusError(f"--attributes {attributes.source!r}: no such table (give mess or a .tsv/.csv of clips "
                            "with a path column)")
    column = attributes.emotion_column or attributes.valence_column
    corpus = _read_table(table, replace(spec, speaker_column=spec.path_column, clips_dir=None), base)
    _require_columns(corpus.columns, (column,), f"attribute table {attributes.source!r}")
    clips = sorted(corpus.clips, key=lambda clip: clip.stimulus_id)
    if attributes.emotion_column:
        unknown = sorted({clip.columns[column].strip().lower() for clip in clips} - set(EMOTION_VALENCE))
        if unknown:
            raise StimulusError(f"attribute table {attributes.source!r}: emotion label(s) {', '.join(unknown)} are not "
                                f"in the table of emotions (docs/building-tests.md); rename them to one of "
                                f"{', '.join(sorted(EMOTION_VALENCE))}")
        groups = [[clip for clip in clips if EMOTION_VALENCE[clip.columns[column].strip().lower()] == side]
                  for side in ("pleasant", "unpleasant")]
        count = attributes.count or min(map(len, groups))
        short = [(side, len(group)) for side, group in zip(("pleasant", "unpleasant"), groups) if len(group) < count]
        if short or count < 2:
            raise StimulusError(f"attribute table {attributes.source!r}: {short or 'too few'} clips labelled; "
                                f"{max(count, 2)} per group needed")
        rngs = (random.Random(f"{spec.seed}:attributes:{side}") for side in "AB")
        return tuple(tuple(sorted(rng.sample(group, count), key=lambda clip: clip.stimulus_id))
                     for rng, group in zip(rngs, groups))
    count = attributes.count or spec.per_group
    try:
        rated = sorted(clips, key=lambda clip: float(clip.columns[column]))  # stable: ties keep the id order
    except ValueError:
        raise StimulusError(f"attribute table {attributes.source!r}: column {column!r} must hold numbers") from None
    if len(rated) < 2 * count:
        raise StimulusError(f"attribute table {attributes.source!r}: {len(rated)} rated clips; {2 * count} needed "
                            f"for the {count} highest and {count} lowest (lower --attribute-count)")
    return tuple(reversed(rated[-count:])), tuple(rated[:count])


def _filters_text(spec: BuildSpec) -> str:
    parts = [f"locale {spec.locale}" if spec.locale else "any locale"]
    if spec.min_seconds is not None or spec.max_seconds is not None:
        parts.append(f"{spec.min_seconds or 0:g}-{'' if spec.max_seconds is None else f'{spec.max_seconds:g}'} s")
    return ", ".join(parts) + ", one clip per speaker"


def _values_hint(corpus: Corpus, definition: GroupDefinition) -> str:
    column = definition.columns[0]
    values = sorted({clip.columns.get(column, "") for clip in corpus.clips} - {""})
    shown = ", ".join(values[:10]) + (", ..." if len(values) > 10 else "")
    return f" (column {column!r} has: {shown or 'no values'})"


PROVENANCE_FORMAT = "speat-tests-build/1"


@dataclass(frozen=True)
class BuiltTest:
    """One test made by the builder: its name, file name, groups and selection."""

    name: str
    file_name: str
    x: GroupDefinition
    y: GroupDefinition
    selection: TargetSelection
    cell: str | None = None


@dataclass(frozen=True)
class BuildResult:
    """What `build_tests` chose: the tests (one, or one per ``--by`` cell), the shared attributes, the corpus."""

    spec: BuildSpec
    tests: tuple[BuiltTest, ...]
    attributes: tuple[tuple[Clip, ...], tuple[Clip, ...]]
    corpus: dict[str, Any]

    def selected(self) -> list[dict[str, Any]]:
        """The chosen ids of every test, as the provenance keeps them."""
        a, b = self.attributes
        return [{"test": test.name, "file": test.file_name, "cell": test.cell, "x": test.x.text, "y": test.y.text,
                 "speakers_found": test.selection.speakers_found,
                 "X": [clip.stimulus_id for clip in test.selection.x],
                 "Y": [clip.stimulus_id for clip in test.selection.y],
                 "pairs": [list(pair) for pair in test.selection.pairs],
                 "A": [clip.stimulus_id for clip in a] or "mess", "B": [clip.stimulus_id for clip in b] or "mess"}
                for test in self.tests]


def build_tests(spec: BuildSpec, *, base: Path = Path(), file_stem: str = "test") -> BuildResult:
    """Select the targets (one test, or one per ``--by`` value, with the same attributes) and attributes of `spec`;
    relative paths of `spec` are read against `base`. Nothing is written (`write_tests`)."""
    corpus = read_corpus(spec, base)
    if spec.by is not None:
        column, values = spec.by
        _require_columns(corpus.columns, (column,), f"corpus {spec.corpus!r}")
        cells = [(value, spec.x.with_condition(column, value), spec.y.with_condition(column, value))
                 for value in values]
    else:
        cells = [(None, spec.x, spec.y)]
    attributes = select_attributes(spec, base)
    tests = []
    for cell, x, y in cells:
        suffix = "" if cell is None else f"-{_slug(cell)}"
        tests.append(BuiltTest(spec.name + suffix, f"{file_stem}{suffix}.json", x, y,
                               select_targets(corpus, spec, x, y, tag=cell or ""), cell))
    return BuildResult(spec, tuple(tests), attributes, corpus.identity)


def _slug(text: str) -> str:
    return "".join(character if character.isalnum() else "_" for character in text.strip().lower())


def provenance_path(out: Path) -> Path:
    """``test.json`` -> ``test.provenance.json``."""
    return out.with_name(out.stem + ".provenance.json")


def intersectional_path(out: Path) -> Path:
    """``test.json`` -> ``test.intersectional.json``: the cells of a ``--by`` build (`speat tests interaction`)."""
    return out.with_name(out.stem + ".intersectional.json")


def write_tests(result: BuildResult, out: Path, *, base: Path = Path()) -> list[Path]:
    """Write each test's JSON (the format of `speat_metric.stimuli.custom`, paths relative to it), the intersectional
    definition of a ``--by`` build and the provenance beside `out`; returns the paths written, provenance last.

    Audio that a dataset holds as bytes is written to ``<out stem>.audio/`` so that the test can point at it."""
    import json

    from speat_metric.version import __version__

    folder = out.parent
    folder.mkdir(parents=True, exist_ok=True)
    a, b = result.attributes
    written = []
    for test in result.tests:
        definition: dict[str, Any] = {
            "name": test.name,
            "description": _description(result.spec, test, provenance_path(out).name),
            "group_names": {"x": test.x.name, "y": test.y.name, **({"a": "pleasant", "b": "unpleasant"} if a else {})},
            "x": {clip.stimulus_id: _audio_path(clip, out, base) for clip in test.selection.x},
            "y": {clip.stimulus_id: _audio_path(clip, out, base) for clip in test.selection.y},
        }
        if a:
            definition["a"] = {clip.stimulus_id: _audio_path(clip, out, base) for clip in a}
            definition["b"] = {clip.stimulus_id: _audio_path(clip, out, base) for clip in b}
        if test.selection.pairs:
            definition["pairs"] = [list(pair) for pair in test.selection.pairs]
        written.append(folder / test.file_name)
        written[-1].write_text(json.dumps(definition, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if result.spec.by is not None:
        column, values = result.spec.by
        cells = {test.cell: test.name for test in result.tests}
        written.append(intersectional_path(out))
        written[-1].write_text(json.dumps({"by": column, "cells": [cells[value] for value in values],
                                           "values": list(values), "x": result.spec.x.text, "y": result.spec.y.text},
                                          indent=2) + "\n", encoding="utf-8")
    spec = _paths_relative_to(result.spec, base, folder)
    provenance = {"format": PROVENANCE_FORMAT, "speat_version": __version__, "spec": spec.to_dict(),
                  "out": out.name, "corpus": result.corpus,
                  "attribute_table_sha256": _attribute_sha256(result.spec, base),
                  "tests": result.selected()}
    written.append(provenance_path(out))
    written[-1].write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return written


def _description(spec: BuildSpec, test: BuiltTest, provenance_name: str) -> str:
    """The test's description: names only (no paths), so that a rebuild from elsewhere writes the same bytes."""
    matched = f", matched on {','.join(spec.match)} ({spec.match_rule})" if spec.match else ""
    attributes = ("the study's MESS sets" if spec.attributes.is_mess
                  else f"{PurePosixPath(spec.attributes.source).name} by "
                  f"{spec.attributes.emotion_column or spec.attributes.valence_column}")
    return (f"Built by speat tests build from {PurePosixPath(spec.corpus).name}: X {test.x.text} vs Y {test.y.text}, "
            f"{spec.per_group} speakers each, one clip per speaker, seed {spec.seed}{matched}; attributes: "
            f"{attributes}; provenance: {provenance_name}")


def _audio_path(clip: Clip, out: Path, base: Path) -> str:
    import os

    if clip.audio_bytes is not None:
        target = out.parent / f"{out.stem}.audio" / f"{_slug(clip.stimulus_id)}{PurePosixPath(clip.path).suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(clip.audio_bytes)
        return PurePosixPath(target.relative_to(out.parent)).as_posix()
    # abspath, not resolve: a path through a symbolic link (a corpus linked into place) stays as the table says
    return PurePosixPath(Path(os.path.relpath(os.path.abspath(base / clip.path),
                                              os.path.abspath(out.parent)))).as_posix()


def _paths_relative_to(spec: BuildSpec, base: Path, folder: Path) -> BuildSpec:
    """`spec` with its local paths relative to `folder` (the provenance's), so that the provenance moves with it."""
    import os

    def relative(value: str | None) -> str | None:
        if value is None or not (base / value).exists():
            return value  # a Hub id, or "mess"
        return PurePosixPath(Path(os.path.relpath(os.path.abspath(base / value), os.path.abspath(folder)))).as_posix()

    attributes = replace(spec.attributes, source=relative(spec.attributes.source))
    return replace(spec, corpus=relative(spec.corpus), clips_dir=relative(spec.clips_dir), attributes=attributes)


def _attribute_sha256(spec: BuildSpec, base: Path) -> str | None:
    return None if spec.attributes.is_mess else hashlib.sha256((base / spec.attributes.source).read_bytes()).hexdigest()


def read_provenance(path: Path) -> tuple[BuildSpec, dict[str, Any]]:
    """The `BuildSpec` and the record of a provenance file; a StimulusError naming the file when it is not one."""
    import json

    try:
        provenance = json.loads(Path(path).read_text(encoding="utf-8"))
        if provenance.get("format") != PROVENANCE_FORMAT:
            raise ValueError(f"format {provenance.get('format')!r}, expected {PROVENANCE_FORMAT!r}")
        return BuildSpec.from_dict(provenance["spec"]), provenance
    except FileNotFoundError:
        raise StimulusError(f"--from-provenance {str(path)!r} does not exist") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StimulusError(f"--from-provenance {str(path)!r} is not a speat tests build provenance file: "
                            f"{error}") from None


def rebuild(path: Path) -> tuple[BuildResult, dict[str, Any]]:
    """Build again what a provenance file recorded (paths read against its folder) and check that the corpus and
    the selection are the same; a StimulusError says what differs."""
    spec, provenance = read_provenance(path)
    base = Path(path).parent
    result = build_tests(spec, base=base, file_stem=Path(provenance["out"]).stem)
    for key in ("sha256", "fingerprint"):
        if provenance["corpus"].get(key) != result.corpus.get(key):
            raise StimulusError(f"the corpus {spec.corpus!r} changed since {str(path)!r} was written ({key} "
                                f"{provenance['corpus'].get(key)} then, {result.corpus.get(key)} now); rebuild from "
                                "the recorded corpus")
    if provenance.get("attribute_table_sha256") != _attribute_sha256(spec, base):
        raise StimulusError(f"the attribute table {spec.attributes.source!r} changed since {str(path)!r} was written")
    if result.selected() != provenance["tests"]:
        raise StimulusError(f"the rebuild from {str(path)!r} chose other clips than the provenance records (the audio "
                            "durations or this speat's selection differ)")
    return result, provenance
