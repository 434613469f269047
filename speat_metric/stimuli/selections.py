"""Which recordings make up each SpEAT group: the study's selections, shipped as package data, and typed tests.

`get_speat_test` turns the CSV files of ``speat_metric/data/selections/`` (the original SpEAT study's selections)
into the tests ``gender``, ``age`` and ``native`` (`SpeatTestSpec`), and the nine further published tests through
`speat_metric.stimuli.battery` (`published_tests`: all 12); `SpeatTestSpec.from_files` builds a test from
the user's own audio files; `demo_speat_test` builds the three tests from the embedded synthetic demo set.

Details (each CSV file and its groups): docs/stimuli.md, "Selections".
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from speat_metric.defaults import STUDY_TESTS
from speat_metric.stimuli.errors import StimulusError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SELECTIONS_DIR = DATA_DIR / "selections"
DEMO_DIR = DATA_DIR / "demo"

SELECTIONS_VERSION = "1.0.0"
"""Version of the packaged selections; the per-file SHA-256 in `selection_versions` pins them exactly."""

ROLES = ("X", "Y", "A", "B")
TEST_NAMES = STUDY_TESTS
TARGET_GROUPS = {"gender": ("female", "male"), "age": ("young", "old"), "native": ("us", "korean")}
ATTRIBUTE_GROUPS = ("pleasant", "unpleasant")

GENDER_FILE = "saa_male_female_clip_info.csv"
AGE_FILE = "saa_usa_young_old_clip_info.csv"
NATIVE_FILE = "saa_us_korean_clip_info.csv"
HUMAN_SYNTHESIZED_FILE = "saa_human_synthesized_clip_info.csv"
BRITISH_FILE = "saa_british_young_old_clip_info.csv"
SAA_FILES = (GENDER_FILE, AGE_FILE, NATIVE_FILE, HUMAN_SYNTHESIZED_FILE, BRITISH_FILE)
"""Every packaged SAA selection: the three tests', then synthetic-saa's humans and age-uk's speakers."""
ATTRIBUTES_FILE = "mess_speat_attribute_selection.csv"
RATINGS_FILE = "mess_valence_by_code.csv"
SELECTION_FILES = (GENDER_FILE, AGE_FILE, NATIVE_FILE, ATTRIBUTES_FILE, RATINGS_FILE)

SAA_PARAGRAPH = (
    "Please call Stella. Ask her to bring these things with her from the store: Six spoons of fresh snow peas, five "
    "thick slabs of blue cheese, and maybe a snack for her brother Bob. We also need a small plastic snake and a big "
    "toy frog for the kids. She can scoop these things into three red bags, and we will go meet her Wednesday at the "
    "train station."
)
"""The elicitation paragraph every Speech Accent Archive speaker reads."""

MESS_EMOTIONS = MappingProxyType({"A": "angry", "C": "calm", "H": "happy", "S": "sad"})
MESS_CUES = MappingProxyType({"M": "Michael", "T": "Theo", "V": "Victor"})
MESS_FILE_PATTERN = re.compile(r"^(?P<code>[ACHS][FM][1-3][MTV]\d{2})_SCR\.wav$")
"""MESS file names: emotion, talker sex, talker number, cue name, sentence number, ``_SCR.wav``."""

DEMO_COLUMNS = ("stimulus_id", "file_name", "test", "role", "group", "voice", "text", "pitch", "speed", "sex",
                "age_group", "accent", "valence", "seconds")


@dataclass(frozen=True)
class Citation:
    """Where a selection or a corpus comes from: BibTeX key, one-line reference, URL and BibTeX entry."""

    key: str
    text: str
    url: str
    bibtex: str


SPEAT_CITATION = Citation(
    key="slaughter2023pretrained",
    text="Slaughter, Greenberg, Schwartz and Caliskan (2023). Pre-trained Speech Processing Models Contain Human-Like "
    "Biases that Propagate to Speech Emotion Recognition. Findings of EMNLP 2023. Selections from the public "
    "repository isaacOnline/SpEAT.",
    url="https://github.com/isaacOnline/SpEAT",
    bibtex="@inproceedings{slaughter2023pretrained,\n  title={Pre-trained Speech Processing Models Contain Human-Like "
    "Biases that Propagate to Speech Emotion Recognition},\n  author={Slaughter, Isaac and Greenberg, Craig and "
    "Schwartz, Reva and Caliskan, Aylin},\n  booktitle={Findings of the Association for Computational Linguistics: "
    "EMNLP 2023},\n  year={2023}\n}",
)
SAA_CITATION = Citation(
    key="weinberger2011speech",
    text="Weinberger and Kunath (2011). The Speech Accent Archive: towards a typology of English accents. "
    "Language and Computers 73, 265-281. Licence CC BY-NC-SA 2.0.",
    url="https://accent.gmu.edu",
    bibtex="@incollection{weinberger2011speech,\n  title={The Speech Accent Archive: towards a typology of English "
    "accents},\n  author={Weinberger, Steven H. and Kunath, Stephen A.},\n  booktitle={Corpus-based Studies in "
    "Language Use, Language Learning, and Language Documentation},\n  series={Language and Computers},\n  "
    "volume={73},\n  pages={265--281},\n  year={2011}\n}",
)
MESS_CITATION = Citation(
    key="morgan2019categorical",
    text="Morgan (2019). Categorical and Dimensional Ratings of Emotional Speech: Behavioral Findings From the Morgan "
    "Emotional Speech Set. Journal of Speech, Language, and Hearing Research 62(11), 4015-4029.",
    url="https://zenodo.org/records/3813437",
    bibtex="@article{morgan2019categorical,\n  title={Categorical and Dimensional Ratings of Emotional Speech: "
    "Behavioral Findings From the Morgan Emotional Speech Set},\n  author={Morgan, Shae D.},\n  journal={Journal of "
    "Speech, Language, and Hearing Research},\n  volume={62},\n  number={11},\n  pages={4015--4029},\n  year={2019}\n}",
)


@dataclass(frozen=True)
class SaaSpeaker:
    """One Speech Accent Archive recording, as the selections describe it (`name`: the archive's file stem, e.g.
    ``"english102"``; `speaker_id`: its ``speakerid``; `age` in years, None when unknown)."""

    name: str
    speaker_id: int
    age: float | None
    sex: str
    birthplace: str
    native_language: str

    @property
    def stimulus_id(self) -> str:
        return saa_stimulus_id(self.name)

    @property
    def file_name(self) -> str:
        return f"{self.name}.mp3"


@dataclass(frozen=True)
class MessClip:
    """One Morgan Emotional Speech Set clip (`code` e.g. ``"AF1M24"``, see `MESS_FILE_PATTERN`; `talker` e.g.
    ``"F1"``) with its mean listener valence rating, 0-100."""

    code: str
    talker: str
    emotion: str
    cue: str
    sentence: int
    valence: float

    @property
    def stimulus_id(self) -> str:
        return mess_stimulus_id(self.code)

    @property
    def file_name(self) -> str:
        return f"{self.code}_SCR.wav"

    @property
    def emotion_name(self) -> str:
        return MESS_EMOTIONS[self.emotion]

    @property
    def cue_name(self) -> str:
        return MESS_CUES[self.cue]


@dataclass(frozen=True)
class StimulusGroup:
    """The stimuli playing one role (X, Y: targets; A, B: attributes) in a test, e.g. ``"female"`` or
    ``"pleasant"``, in a fixed order, and how they were chosen."""

    role: str
    name: str
    stimulus_ids: tuple[str, ...]
    description: str = ""

    def __len__(self) -> int:
        return len(self.stimulus_ids)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stimulus_ids": list(self.stimulus_ids)}


@dataclass(frozen=True)
class SpeatTestSpec:
    """A SpEAT test: two target groups X and Y, two attribute groups A and B, and where they come from.

    Attributes:
        x, y, a, b: the groups (positive d: X sits closer to A than Y does; A is pleasant in the study's tests).
        pairs: matched (X id, Y id) pairs, each stimulus in at most one pair; empty when unmatched.
        files: (stimulus id, audio path) for tests over the user's own files or the demo set; empty for tests whose
            audio comes from a source (download, local directory, Hub dataset).
        synthetic: True for the embedded demo set: a pipeline check, not a bias measurement.
        definition_file, definition_sha256: a custom test's JSON file (`load_custom_test`) as given, and its hash.

    Raises:
        StimulusError: the groups or pairs are invalid (a wrong role, fewer than 2 stimuli, a stimulus in two groups).
    """

    name: str
    description: str
    x: StimulusGroup
    y: StimulusGroup
    a: StimulusGroup
    b: StimulusGroup
    pairs: tuple[tuple[str, str], ...] = ()
    citations: tuple[Citation, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    synthetic: bool = False
    definition_file: str | None = None
    definition_sha256: str | None = None

    def __post_init__(self) -> None:
        for role, group in zip(ROLES, self.groups):
            if group.role != role:
                raise StimulusError(f"test {self.name!r}: the group in slot {role} has role {group.role!r}")
            if len(group) < 2:
                raise StimulusError(
                    f"test {self.name!r}: group {role} ({group.name!r}) has {len(group)} stimuli; SpEAT needs at "
                    "least 2 per group (the effect size divides by a standard deviation)"
                )
            duplicated = sorted({s for s in group.stimulus_ids if group.stimulus_ids.count(s) > 1})
            if duplicated:
                raise StimulusError(f"test {self.name!r}: group {role} lists {duplicated} more than once")
        seen: dict[str, str] = {}
        for group in self.groups:
            for stimulus_id in group.stimulus_ids:
                if stimulus_id in seen:
                    raise StimulusError(
                        f"test {self.name!r}: stimulus {stimulus_id!r} is in both group {seen[stimulus_id]} and group "
                        f"{group.role}; each stimulus may play one role only"
                    )
                seen[stimulus_id] = group.role
        x_ids, y_ids = set(self.x.stimulus_ids), set(self.y.stimulus_ids)
        paired = [stimulus_id for pair in self.pairs for stimulus_id in pair]
        for x_id, y_id in self.pairs:
            if x_id not in x_ids or y_id not in y_ids:
                raise StimulusError(
                    f"test {self.name!r}: pair ({x_id!r}, {y_id!r}) must join a stimulus of X ({self.x.name}) with "
                    f"one of Y ({self.y.name})"
                )
        if len(paired) != len(set(paired)):
            raise StimulusError(f"test {self.name!r}: a stimulus appears in more than one pair")
        unknown_files = sorted(set(dict(self.files)) - set(seen))
        if unknown_files:
            raise StimulusError(f"test {self.name!r}: files given for stimuli outside the test: {unknown_files}")

    @property
    def groups(self) -> tuple[StimulusGroup, StimulusGroup, StimulusGroup, StimulusGroup]:
        """The four groups in role order X, Y, A, B."""
        return (self.x, self.y, self.a, self.b)

    @property
    def stimulus_ids(self) -> tuple[str, ...]:
        """Every stimulus of the test, in role order."""
        return tuple(stimulus_id for group in self.groups for stimulus_id in group.stimulus_ids)

    @property
    def sizes(self) -> dict[str, int]:
        """Number of stimuli per role, e.g. ``{"X": 60, "Y": 60, "A": 60, "B": 60}``."""
        return {group.role: len(group) for group in self.groups}

    @property
    def pair_ids(self) -> dict[str, int]:
        """Stimulus id -> index of its pair in `pairs` (paired stimuli only)."""
        return {stimulus_id: index for index, pair in enumerate(self.pairs) for stimulus_id in pair}

    def group(self, role: str) -> StimulusGroup:
        """The group playing `role` (``"X"``, ``"Y"``, ``"A"`` or ``"B"``)."""
        if role not in ROLES:
            raise StimulusError(f"role must be one of {ROLES}, got {role!r}")
        return self.groups[ROLES.index(role)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; `from_dict` reverses it."""
        return {
            "name": self.name, "description": self.description,
            "groups": [group.to_dict() for group in self.groups],
            "pairs": [list(pair) for pair in self.pairs],
            "citations": [asdict(citation) for citation in self.citations],
            "files": dict(self.files), "synthetic": self.synthetic,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpeatTestSpec:
        x, y, a, b = (StimulusGroup(g["role"], g["name"], tuple(g["stimulus_ids"]), g.get("description", ""))
                      for g in data["groups"])
        return cls(
            name=data["name"], description=data["description"], x=x, y=y, a=a, b=b,
            pairs=tuple(tuple(pair) for pair in data.get("pairs", ())),
            citations=tuple(Citation(**c) for c in data.get("citations", ())),
            files=tuple(dict(data.get("files", {})).items()), synthetic=bool(data.get("synthetic", False)),
        )

    @classmethod
    def from_files(
        cls,
        name: str,
        *,
        x: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
        y: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
        a: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike] | None = None,
        b: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike] | None = None,
        group_names: Sequence[str] = ("X", "Y", "A", "B"),
        pairs: Iterable[tuple[str, str]] = (),
        description: str = "",
    ) -> SpeatTestSpec:
        """A test over your own audio files (`speat_metric.stimuli.load_speat_test` turns it into a set).

        Args:
            x, y, a, b: the audio files of each group: a list of paths (ids become ``custom/<file stem>``) or a
                mapping of stimulus id to path. Leave out `a` and `b` to use the study's attributes (the MESS clips
                of SpEAT's pleasant and unpleasant groups, which keep their names, from `load_speat_test`'s source).
            group_names: names of the X, Y, A and B groups, e.g. ``("female", "male", "pleasant", "unpleasant")``.

        Raises:
            StimulusError: a file does not exist, two files share a stem, or the groups are invalid (see the class).

        Example:
            >>> import tempfile
            >>> folder = Path(tempfile.mkdtemp())
            >>> paths = {n: folder / f"{n}.wav" for n in ["ann", "amy", "bob", "ben", "joy", "fun", "sad", "mad"]}
            >>> for path in paths.values():
            ...     _ = path.write_bytes(b"RIFF")
            >>> spec = SpeatTestSpec.from_files(
            ...     "mine", x=[paths["ann"], paths["amy"]], y=[paths["bob"], paths["ben"]],
            ...     a=[paths["joy"], paths["fun"]], b=[paths["sad"], paths["mad"]],
            ...     group_names=("women", "men", "pleasant", "unpleasant"))
            >>> spec.x.stimulus_ids, spec.b.name
            (('custom/ann', 'custom/amy'), 'unpleasant')
        """
        if len(group_names) != 4:
            raise StimulusError(f"group_names needs 4 names (X, Y, A, B), got {list(group_names)!r}")
        if (a is None) != (b is None):
            raise StimulusError(f"test {name!r}: give both attribute groups a and b, or neither (to use the study's)")
        groups = []
        files: dict[str, str] = {}
        for role, group_name, entries in zip(ROLES, group_names, (x, y, a, b)):
            if entries is None:
                groups.append(attribute_groups()[ROLES.index(role) - 2])
                continue
            if isinstance(entries, Mapping):
                items = [(str(stimulus_id), Path(path)) for stimulus_id, path in entries.items()]
            else:
                items = [(f"custom/{Path(path).stem}", Path(path)) for path in entries]
            for stimulus_id, path in items:
                if not path.is_file():
                    problem = "is a directory, not an audio file" if path.is_dir() else "does not exist"
                    raise StimulusError(f"test {name!r}, group {role}: audio file {str(path)!r} {problem}")
                if stimulus_id in files and files[stimulus_id] != str(path.resolve()):
                    raise StimulusError(
                        f"test {name!r}: files {files[stimulus_id]!r} and {str(path)!r} would both get the id "
                        f"{stimulus_id!r}; give group {role} as a mapping of unique stimulus ids to paths instead of a "
                        f"list (in a custom test JSON: \"{role.lower()}\": {{\"{role.lower()}-{path.stem}\": "
                        f"\"{path.name}\", ...}})"
                    )
                files[stimulus_id] = str(path.resolve())
            groups.append(StimulusGroup(role, group_name, tuple(stimulus_id for stimulus_id, _ in items)))
        study_attributes = a is None
        return cls(name=name, description=description or f"custom SpEAT test {name!r} over local audio files"
                   + (" with the study's attributes" if study_attributes else ""),
                   x=groups[0], y=groups[1], a=groups[2], b=groups[3],
                   pairs=tuple((str(p), str(q)) for p, q in pairs),
                   citations=(SPEAT_CITATION, MESS_CITATION) if study_attributes else (), files=tuple(files.items()))


def saa_stimulus_id(name: str) -> str:
    """Stable id of a Speech Accent Archive recording, e.g. ``saa/english102``."""
    return f"saa/{name}"


def mess_stimulus_id(code: str) -> str:
    """Stable id of a Morgan Emotional Speech Set clip, e.g. ``mess/AF1M24``."""
    return f"mess/{code}"


def read_csv_rows(path: Path, required: Sequence[str], *, layout: str) -> list[dict[str, str]]:
    """The rows (column -> stripped text) of a CSV file whose header must contain `required`; a StimulusError names
    what is missing, and the `layout` expected."""
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = [column.strip() for column in reader.fieldnames or []]
        missing = [column for column in required if column not in columns]
        if missing:
            raise StimulusError(
                f"{path} does not have the columns of {layout}: expected {', '.join(required)}; missing "
                f"{', '.join(missing)} (found {', '.join(columns) or 'no header'})"
            )
        return [{(key or "").strip(): (value or "").strip() for key, value in row.items()} for row in reader]


_SAA_COLUMNS = ("id", "name", "birth_place", "native_language", "age", "sex")
_RowTest = Callable[[dict[str, str]], bool]


@functools.cache
def _saa_selection(file_name: str) -> tuple[dict[str, str], ...]:
    required = _SAA_COLUMNS + {GENDER_FILE: ("pair_id",), NATIVE_FILE: ("pair_id",), AGE_FILE: ("age_rank",),
                               HUMAN_SYNTHESIZED_FILE: (), BRITISH_FILE: ("age_rank",)}[file_name]
    return tuple(read_csv_rows(SELECTIONS_DIR / file_name, required, layout=f"the SpEAT selection {file_name}"))


@functools.cache
def saa_speakers() -> Mapping[str, SaaSpeaker]:
    """Every Speech Accent Archive recording used by the published tests, by name (348); a StimulusError if two
    selection files disagree about a speaker (the package data is damaged)."""
    speakers: dict[str, SaaSpeaker] = {}
    for file_name in SAA_FILES:
        for row in _saa_selection(file_name):
            age = float(row["age"]) if row["age"] not in ("", "nan", "NaN") else None
            speaker = SaaSpeaker(row["name"], int(row["id"]), age, row["sex"], row["birth_place"],
                                 row["native_language"])
            if speakers.setdefault(speaker.name, speaker) != speaker:
                raise StimulusError(
                    f"selection files disagree about SAA speaker {speaker.name!r}: {speakers[speaker.name]} vs "
                    f"{speaker} (from {file_name}); reinstall speat"
                )
    return MappingProxyType(speakers)


@functools.cache
def mess_clips() -> Mapping[str, MessClip]:
    """All 1,800 Morgan Emotional Speech Set clips with their mean valence rating, by code."""
    rows = read_csv_rows(SELECTIONS_DIR / RATINGS_FILE, ("code", "emotion", "gender", "talker", "cue", "sentencenum",
                                                         "Valence"), layout=f"the MESS ratings {RATINGS_FILE}")
    clips = {
        row["code"]: MessClip(code=row["code"], talker=f"{row['gender']}{row['talker']}", emotion=row["emotion"],
                              cue=row["cue"], sentence=int(row["sentencenum"]), valence=float(row["Valence"]))
        for row in rows
    }
    return MappingProxyType(clips)


@functools.cache
def attribute_groups() -> tuple[StimulusGroup, StimulusGroup]:
    """SpEAT's attributes: per MESS talker the 10 highest-valence clips (A, pleasant) and the 10 lowest (B)."""
    rows = read_csv_rows(SELECTIONS_DIR / ATTRIBUTES_FILE, ("code", "speaker_id", "valence_rank", "Valence"),
                         layout=f"the SpEAT selection {ATTRIBUTES_FILE}")
    pleasant = tuple(mess_stimulus_id(row["code"]) for row in rows if row["valence_rank"] == "high_valence")
    unpleasant = tuple(mess_stimulus_id(row["code"]) for row in rows if row["valence_rank"] == "low_valence")
    rule = "for each of the 6 MESS talkers, the 10 clips with the {} mean listener valence"
    return (StimulusGroup("A", ATTRIBUTE_GROUPS[0], pleasant, rule.format("highest")),
            StimulusGroup("B", ATTRIBUTE_GROUPS[1], unpleasant, rule.format("lowest")))


def _pairs_by_id(rows: Iterable[dict[str, str]], is_x: _RowTest, file_name: str) -> tuple[tuple[str, str], ...]:
    members: dict[str, list[tuple[bool, str]]] = {}
    for row in rows:
        members.setdefault(row["pair_id"], []).append((bool(is_x(row)), saa_stimulus_id(row["name"])))
    pairs = []
    for pair_id, pair in sorted(members.items(), key=lambda item: int(item[0])):
        if sorted(side for side, _ in pair) != [False, True]:
            raise StimulusError(f"{file_name}: pair_id {pair_id} must join one X and one Y speaker, found {pair}; "
                                "reinstall speat")
        pairs.append(tuple(stimulus_id for _, stimulus_id in sorted(pair, reverse=True)))
    return tuple(pairs)


def _target_test(name: str, file_name: str, is_x: _RowTest, description: str, rules: tuple[str, str]
                 ) -> SpeatTestSpec:
    rows = _saa_selection(file_name)
    x_name, y_name = TARGET_GROUPS[name]
    x = StimulusGroup("X", x_name, tuple(saa_stimulus_id(r["name"]) for r in rows if is_x(r)), rules[0])
    y = StimulusGroup("Y", y_name, tuple(saa_stimulus_id(r["name"]) for r in rows if not is_x(r)), rules[1])
    pairs = _pairs_by_id(rows, is_x, file_name) if "pair_id" in rows[0] else ()
    a, b = attribute_groups()
    return SpeatTestSpec(name=name, description=description, x=x, y=y, a=a, b=b, pairs=pairs,
                         citations=(SPEAT_CITATION, SAA_CITATION, MESS_CITATION))


@functools.cache
def original_test(name: str) -> SpeatTestSpec:
    """One of speat's three original tests, ``"gender"``, ``"age"`` or ``"native"`` (the published T6, T10 and T8),
    with its groups, pairs and citations; every published test: `speat_metric.stimuli.battery.get_speat_test`.

    Example:
        >>> spec = original_test("age")
        >>> spec.x.name, spec.y.name, spec.sizes
        ('young', 'old', {'X': 58, 'Y': 58, 'A': 60, 'B': 60})
    """
    if name == "gender":
        return _target_test(
            "gender", GENDER_FILE, lambda row: row["sex"] == "female",
            "Gender: female (X) vs male (Y) US-born native English speakers of the Speech Accent Archive, in pairs "
            "of identical age; attributes pleasant (A) vs unpleasant (B) speech of the Morgan Emotional Speech Set.",
            ("US-born native English female speakers", "US-born native English male speakers of the same ages"))
    if name == "age":
        return _target_test(
            "age", AGE_FILE, lambda row: row["age_rank"] == "low_age",
            "Age: young (X, 6-19) vs old (Y, 57-93) US-born native English speakers of the Speech Accent Archive, "
            "29 female and 29 male in each; attributes pleasant (A) vs unpleasant (B) speech of the Morgan Emotional "
            "Speech Set.",
            ("US-born native English speakers aged 6-19", "US-born native English speakers aged 57-93"))
    if name == "native":
        return _target_test(
            "native", NATIVE_FILE, lambda row: row["native_language"] == "english",
            "Native language: US-born native English (X) vs Korea-born native Korean (Y) speakers of the Speech "
            "Accent Archive reading English, matched as groups on age and sex; attributes pleasant (A) vs "
            "unpleasant (B) speech of the Morgan Emotional Speech Set.",
            ("US-born native English speakers", "Korea-born native Korean speakers matched as a group on age and sex"))
    raise StimulusError(f"{name!r} is not one of speat's original tests ({', '.join(TEST_NAMES)})")


def speat_tests() -> dict[str, SpeatTestSpec]:
    """The three original tests, by name."""
    return {name: original_test(name) for name in TEST_NAMES}


def selection_versions(file_names: Sequence[str] = SELECTION_FILES) -> dict[str, str]:
    """Package selection version plus ``sha256:<hex>`` of each selection file (default those of the three tests):
    what pins the stimuli of a result."""
    return dict(_selection_versions(tuple(file_names)))


@functools.cache
def _selection_versions(file_names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    versions = [("selections", SELECTIONS_VERSION)]
    for file_name in file_names:
        versions.append((file_name, "sha256:" + hashlib.sha256((SELECTIONS_DIR / file_name).read_bytes()).hexdigest()))
    return tuple(versions)


def demo_available(demo_dir: str | os.PathLike = DEMO_DIR) -> bool:
    """True when the synthetic demo set is installed (``speat_metric/data/demo/metadata.csv``)."""
    return (Path(demo_dir) / "metadata.csv").is_file()


def demo_metadata(demo_dir: str | os.PathLike = DEMO_DIR) -> tuple[dict[str, str], ...]:
    """The rows of a demo set's ``metadata.csv``; a StimulusError if it is not there or lacks a column."""
    return _demo_metadata(Path(demo_dir).resolve())


@functools.cache
def _demo_metadata(demo_dir: Path) -> tuple[dict[str, str], ...]:
    if not demo_available(demo_dir):
        raise StimulusError(f"the demo set is not installed ({demo_dir / 'metadata.csv'} is missing); reinstall "
                            "speat, or use another stimulus source")
    return tuple(read_csv_rows(demo_dir / "metadata.csv", DEMO_COLUMNS, layout="the speat demo set"))


def demo_speat_test(name: str, *, demo_dir: str | os.PathLike = DEMO_DIR) -> SpeatTestSpec:
    """The test `name` over the SYNTHETIC demo set: a pipeline check, NOT a bias measurement.

    Targets are the demo clips with ``test == name``; attributes are the clips with ``test == "attributes"``, shared
    by the three tests as MESS is in the real design.
    """
    if name not in TEST_NAMES:
        raise StimulusError(f"unknown SpEAT test {name!r}: the demo set has {', '.join(TEST_NAMES)}")
    demo_dir = Path(demo_dir).resolve()
    rows = demo_metadata(demo_dir)
    groups = []
    for role, test in (("X", name), ("Y", name), ("A", "attributes"), ("B", "attributes")):
        chosen = [row for row in rows if row["test"] == test and row["role"] == role]
        names = sorted({row["group"] for row in chosen})
        if len(names) != 1:
            raise StimulusError(f"demo set: role {role} of test {test!r} must have exactly one group, found {names}")
        groups.append(StimulusGroup(role, names[0], tuple(row["stimulus_id"] for row in chosen),
                                    "synthetic speech (see speat_metric/data/demo/README.md)"))
    files = tuple((row["stimulus_id"], str(demo_dir / row["file_name"])) for row in rows
                  if row["stimulus_id"] in {s for group in groups for s in group.stimulus_ids})
    return SpeatTestSpec(
        name=name, description=f"SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT: the {name!r} test over "
        "synthesised speech from the embedded demo set; its result says nothing about any model's bias.",
        x=groups[0], y=groups[1], a=groups[2], b=groups[3], files=files, synthetic=True)
