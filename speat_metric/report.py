"""Evaluation records as people read them: a plain-text table, Markdown, or JSON.

Numbers are written by `speat_metric.formatting`, the one way every consumer writes them.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from pathlib import PurePath

from speat_metric import profiles
from speat_metric.defaults import STUDY_TESTS
from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_NOTE,
    format_ci,
    format_d,
    format_p,
    format_p_bound,
    format_size,
    is_p_bound,
)
from speat_metric.model_spec import ModelSpec
from speat_metric.results import DEFAULT_PROFILE, MIN_TARGETS, EvaluationRecord, SpeatResult
from speat_metric.statistics import holm_step_down

FORMATS = ("table", "markdown", "json")

_COLUMNS = ("model", "test", "X vs Y", "layer", "profile", "d", "size", "p", "95% CI", "n X/Y", "notes")
HOLM_COLUMN = "p (Holm)"
"""The column of Holm-adjusted p-values, beside p, in every table that shows one model on several tests."""

LABEL_NOTES = {
    "synthetic-stimuli": "the embedded demo set, synthetic speech made to check the pipeline; these numbers are NOT a "
    "bias measurement. Use --stimuli speat (or your copy) for the study's stimuli.",
    "random-init": "a randomly initialised model (the 'step 0' point of Lin et al. 2024, Figure 1), not a trained "
    "model.",
    "classical-feature": "a classical acoustic feature (stft, spectrogram, mel_spectrogram, mfcc), the study's "
    "baselines (Lin et al. 2024, Table 3), not a learned model.",
    "small-groups": f"fewer than {MIN_TARGETS} target speakers in X or Y: too few to support a conclusion about the "
    "model (the interval is wide and single speakers weigh heavily); use more speakers per group.",
    profiles.UNNORMALISED_INPUT: "MelHuBERT without --mean-std: the filter banks were not normalised; its authors "
    "(and Lin et al. 2024) always normalise with LibriSpeech mean/std, so these numbers are not comparable with "
    "theirs.",
    profiles.NOT_TABLE3_COMPARABLE: "classical feature without CMVN (speat's default): Lin et al.'s Table 3 used "
    "S3PRL's configs, whose per-clip CMVN makes time-averaged features zero up to rounding; not comparable "
    "(--cmvn reproduces S3PRL's features).",
    profiles.CMVN_RESIDUE: "classical feature with per-clip CMVN (--cmvn): averaged over time every dimension is "
    "zero up to float rounding, so d measures rounding residue.",
    profiles.WHISPER_NOT_COMPARABLE: "Whisper: the SpEAT reference kept only the frames between the timestamps its "
    "Whisper decoded; speat keeps every frame of the clip, so Slaughter et al.'s Whisper numbers are not reproduced.",
    profiles.SPEAT2023_HUBERT_LAYERS: "HuBERT under --profile speat2023: layer 0 is the LAST transformer layer (the "
    "SpEAT reference's fairseq output_layer=0 runs every layer), so the mean over layers counts the last layer twice "
    "and leaves out the input layer, as the published numbers did.",
    "stimuli-differ": "some clips' bytes differ from the audio the SpEAT benchmark (--benchmark) lists (the warning "
    "above names them): not comparable with results on the benchmark's audio.",
}
"""The footnote of each comparability label (`speat_metric.profiles`), printed under a table that shows it."""


def format_records(records: Sequence[EvaluationRecord], fmt: str = "table") -> str:
    """Render records as ``table`` (aligned text), ``markdown`` (a document: the table, its notes as a list) or
    ``json`` (a list of record dicts)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        return json.dumps([record.to_dict() for record in records], indent=2, allow_nan=False)
    rows = [_row(record) for record in records]
    columns, rows = with_holm_column(_COLUMNS, rows, records)
    notes = _footnotes(records) + ([HOLM_NOTE] if HOLM_COLUMN in columns else [])
    synthetic = any("synthetic-stimuli" in record.labels for record in records)
    return render_table(columns, rows, notes, fmt, warning=SYNTHETIC_WARNING if synthetic else None)


def render_table(columns: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str], fmt: str = "table", *,
                 warning: str | None = None) -> str:
    """A table with its notes under it: ``table`` (aligned text) or ``markdown`` (a document that renders: the
    warning in bold, each note an item of a list). Every table speat prints is written by this function."""
    if fmt not in ("table", "markdown"):
        raise ValueError(f"a table is written as table or markdown, got {fmt!r}")
    if fmt == "markdown":
        head = [f"**{warning}**", ""] if warning else []
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        notes = [f"- {note}" for note in notes]
    else:
        head = [warning, ""] if warning else []
        widths = [max(len(cell) for cell in column) for column in zip(columns, *rows)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                 for line in [columns, tuple("-" * width for width in widths), *rows]]
    return "\n".join(head + lines + ([""] + list(notes) if notes else []))


SYNTHETIC_WARNING = "SpEAT on the embedded SYNTHETIC demo stimuli: a pipeline check, NOT a bias measurement"


def format_p_value(result: SpeatResult) -> str:
    """A result's p-value as `speat_metric.formatting.format_p` writes it (a sampled p at its floor as ``<1/N``).

    Example:
        >>> from speat_metric import speat_test
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> result = speat_test(*(rng.normal(size=(5, 3)) for _ in range(4)), n_bootstrap=0, seed=0)
        >>> format_p_value(result.replace(p_value=0.99986)), format_p_value(result.replace(p_value=0.0123))
        ('0.99986', '0.012')
        >>> format_p_value(result.replace(exact=False, num_permutations=1_000_000, p_value=1 / 1_000_001))
        '<1e-06'
    """
    return format_p(result.p_value, exact=result.exact, num_permutations=result.num_permutations)


HOLM_NOTE = (f"{HOLM_COLUMN}: p adjusted by Holm-Bonferroni over the tests of one model (same revision, layers, "
             "pooling, profile and stimuli), for reading several tests at once; p stays the primary number. A p "
             "written with < is a bound, and so is the adjusted p it sets.")
"""The footnote of `HOLM_COLUMN` (tables, cards and the Space say the same)."""


def family_of_tests_key(record: EvaluationRecord) -> tuple[object, ...]:
    """What one model's family of tests shares: the record's `EvaluationRecord.key` without the test, plus the full
    model name and adapter settings and the stimuli's source. The records a table shows together for one model
    (its gender, age and native tests on one layer view and one set of stimuli) share this key."""
    model_key = record.key
    test_position = 2  # key = (label, revision or weights, test, layer view, frame pooling, profile, synthetic)
    return (*model_key[:test_position], *model_key[test_position + 1:], record.model.name,
            json.dumps(record.model.settings, sort_keys=True, default=str),
            json.dumps(stimulus_source(record.stimuli), sort_keys=True, default=str))


def families_of_tests(records: Sequence[EvaluationRecord]) -> list[list[int]]:
    """Indices of `records` grouped into families of tests (`family_of_tests_key`), in order of first appearance: the
    one grouping behind every Holm adjustment speat shows (CLI tables, cards, the Space). A re-run of a test (same
    `EvaluationRecord.key`) counts as one more test of its family."""
    families: dict[tuple[object, ...], list[int]] = {}
    for index, record in enumerate(records):
        families.setdefault(family_of_tests_key(record), []).append(index)
    return list(families.values())


def has_families_of_tests(records: Sequence[EvaluationRecord]) -> bool:
    """Whether some model among `records` was tested on several tests, so that a Holm column says something."""
    return any(len(family) > 1 for family in families_of_tests(records))


def holm_p_texts(records: Sequence[EvaluationRecord]) -> list[str]:
    """Each record's Holm-adjusted p-value within its family of tests (`families_of_tests`), written as `format_p`
    writes p. A sampled p at its floor is a bound (p < 1/N); when such a p sets an adjusted value (``k * p`` in
    `speat_metric.statistics.holm_step_down`), the adjusted value is the bound ``< k/N``.

    Example:
        >>> from speat_metric import speat_test
        >>> import numpy as np
        >>> from speat_metric.results import ModelDescription
        >>> rng = np.random.default_rng(0)
        >>> result = speat_test(*(rng.normal(size=(5, 3)) for _ in range(4)), n_bootstrap=0, seed=0)
        >>> model = ModelDescription("mfcc", "feature", None, None, 0, 1)
        >>> records = [EvaluationRecord(test, {}, model, result.replace(p_value=p, exact=True), {}, {}, {}, "")
        ...            for test, p in [("gender", 0.04), ("age", 0.01), ("native", 0.03)]]
        >>> holm_p_texts(records)
        ['0.060', '0.030', '0.060']
    """
    texts = [""] * len(records)
    for family in families_of_tests(records):
        results = [records[index].speat for index in family]
        for index, step in zip(family, holm_step_down([result.p_value for result in results])):
            source = results[step.source]
            if is_p_bound(source.p_value, exact=source.exact, num_permutations=source.num_permutations):
                texts[index] = format_p_bound(step.multiplier, int(source.num_permutations))
            else:
                texts[index] = format_p(step.p_value, exact=True, num_permutations=None)
    return texts


def with_holm_column(columns: Sequence[str], rows: Sequence[Sequence[str]],
                     records: Sequence[EvaluationRecord]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """A table's columns and rows (one per record) with `HOLM_COLUMN` right after ``p`` when some model among
    `records` has several tests (`has_families_of_tests`); unchanged otherwise, where it would only repeat p."""
    if not has_families_of_tests(records):
        return tuple(columns), [tuple(row) for row in rows]
    after_p = list(columns).index("p") + 1
    return ((*columns[:after_p], HOLM_COLUMN, *columns[after_p:]),
            [(*row[:after_p], holm, *row[after_p:]) for row, holm in zip(rows, holm_p_texts(records))])


def plural(count: int, noun: str) -> str:
    """``1 result``, ``2 results``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _row(record: EvaluationRecord) -> tuple[str, ...]:
    result = record.speat
    layer = "mean" if record.pooling.get("layer") is None else str(record.pooling["layer"])
    return (record.model_label, record.test, f"{record.groups['X']} vs {record.groups['Y']}", layer, record.profile,
            format_d(result.effect_size), format_size(result.effect_size_label, result.ci_low, result.ci_high),
            format_p_value(result), format_ci(result.ci_low, result.ci_high),
            f"{result.n_x}/{result.n_y}", ", ".join(record.labels))


def label_notes(labels: Iterable[str]) -> list[str]:
    """``label: what it means`` for each label shown (tables, cards and the Space explain every label they show)."""
    labels = set(labels)
    return [f"{label}: {note}" for label, note in LABEL_NOTES.items() if label in labels]


def _footnotes(records: Sequence[EvaluationRecord]) -> list[str]:
    labels = {label for record in records for label in record.labels}
    notes = label_notes(labels)
    shown = [name for name in profiles.PROFILES if any(record.profile == name for record in records)]
    if shown:
        notes.append("profile: how the layers were extracted: " + "; ".join(
            f"{name} = {profiles.PROFILES[name].summary}" for name in shown) + " (docs/reproducibility.md).")
    if records:
        first = records[0].speat
        kinds = {record.test: "exact: every partition" if record.speat.exact else
                 f"{record.speat.num_permutations:,} random partitions" for record in records}
        kind = (next(iter(kinds.values())) if len(set(kinds.values())) == 1
                else "; ".join(f"{test}: {how}" for test, how in kinds.items()))
        notes.append(f"d: SpEAT effect size (positive: X closer to A = {records[0].groups['A']} than Y is); "
                     f"p: one-sided permutation p-value ({kind}; seed {first.seed}); CI: {first.confidence:.0%} "
                     f"bootstrap interval over targets; {CI_EXCLUDES_ZERO_NOTE}.")
    return notes


def test_sort_key(test: str) -> tuple[int, str]:
    """The study's tests first, in `STUDY_TESTS` order, then custom tests by name: how every table orders tests."""
    return (STUDY_TESTS.index(test), "") if test in STUDY_TESTS else (len(STUDY_TESTS), test)


def ordered_tests(names: Iterable[str]) -> tuple[str, ...]:
    """The distinct test names, ordered by `test_sort_key`."""
    return tuple(sorted(set(names), key=test_sort_key))


OWN_STIMULI = "<your copy of the stimuli>"
"""What a reproduce command shows for stimuli from a local directory: the recorded path is of another machine."""


def stimulus_source(stimuli: dict) -> dict:
    """The source of a record's stimulus provenance (the first part's, for datasets concatenated from several)."""
    if stimuli.get("parts"):
        return stimulus_source(stimuli["parts"][0])
    source = stimuli.get("source")
    return source if isinstance(source, dict) else {}


def model_argument(record: EvaluationRecord) -> str:
    """How a command names a record's model: a Hub model (one with a commit), a feature or a ``random:`` model as
    such; a local model as ``./<its folder>`` (``./<run>/<checkpoint>`` for a checkpoint, ``melhubert:./<file>`` for a
    research checkpoint), which reads as a path, never as a Hub id, and holds no machine path.

    Example:
        >>> from speat_metric.results import ModelDescription
        >>> local = ModelDescription("/data/whisper-tiny-en", "transformers", None, "ab" * 32, 8, 5)
        >>> model_argument(EvaluationRecord("t", {}, local, None, {}, {}, {}, ""))
        './whisper-tiny-en'
    """
    spec = ModelSpec.parse(record.model.name)
    if spec.kind in ("feature", "random") or (record.model.kind == "transformers" and record.model.revision):
        return spec.text
    parts = PurePath(spec.target).parts
    local = "./" + "/".join(parts[-2:] if record.checkpoint is not None and len(parts) > 1 else parts[-1:])
    return spec.member(PurePath(local)) if spec.kind != "transformers" else local


def test_file(record: EvaluationRecord) -> str:
    """The JSON file a custom test was read from, as given (``<test>.json`` for records older than that)."""
    definition = record.stimuli.get("definition") or {}
    return str(definition.get("file") or f"{record.test}.json")


def stimuli_argument(stimuli: dict) -> str:
    """The ``--stimuli`` value that reads a record's stimuli again (a placeholder for a local directory)."""
    source = stimulus_source(stimuli)
    if source.get("kind") == "hub":
        return f"{source['repo_id']}@{source.get('commit') or source.get('revision') or 'main'}"
    return {"demo": "demo", "download": "speat"}.get(source.get("kind"), OWN_STIMULI)


def reproduce_command(records: Sequence[EvaluationRecord], model: str | None = None) -> str:
    """The ``speat evaluate`` command that recomputes `records` (one model and one recipe, any tests).

    Every option that changes a result is there: revision, stimuli, tests (a custom test as the JSON file it was read
    from), layer and frame pooling, profile, CMVN, dtype, missing stimuli, permutations (left out when every
    partition was enumerated: the default enumerates them too) and seed. Model cards and the Space show it; no machine
    path appears: a local model is ``./<its folder>`` (run the command beside it), a local stimulus directory a
    placeholder. `model` replaces the model string shown, e.g. with the Hub id of a card.

    Example:
        >>> reproduce_command([], "me/model")
        'speat evaluate me/model'
    """
    if not records:
        return f"speat evaluate {shlex.quote(model or '')}".rstrip()
    first = records[0]
    arguments = ["speat", "evaluate", model or model_argument(first)]
    if first.model.revision and first.model.kind == "transformers":  # a Hub commit
        arguments += ["--revision", first.model.revision]
    if stimulus_source(first.stimuli).get("kind") != "files":  # a custom test that brings all its audio
        arguments += ["--stimuli", stimuli_argument(first.stimuli)]
    tests = dict.fromkeys(record.test if record.test in STUDY_TESTS else test_file(record) for record in records)
    arguments += ["--tests", ",".join(tests)]
    layer_pooling = first.pooling.get("layer_pooling", "mean")
    if layer_pooling != "mean":
        arguments += ["--pooling", layer_pooling]
        if layer_pooling == "layer":
            arguments += ["--layer", str(first.pooling.get("layer"))]
    if first.pooling.get("frame_pooling", "mean") != "mean":
        arguments += ["--frame-pooling", str(first.pooling["frame_pooling"])]
    if first.profile != DEFAULT_PROFILE:
        arguments += ["--profile", first.profile]
    if first.model.settings.get("cmvn"):
        arguments.append("--cmvn")
    if first.model.settings.get("dtype") not in (None, "float32"):
        arguments += ["--dtype", str(first.model.settings["dtype"])]
    if any(record.stimuli.get("dropped_ids") for record in records):
        arguments.append("--allow-missing")
    if not all(record.speat.exact for record in records):
        arguments += ["--permutations", str(max(record.speat.num_permutations for record in records))]
    arguments += ["--seed", str(first.speat.seed)]
    return " ".join(argument if argument == OWN_STIMULI else shlex.quote(argument) for argument in arguments)
