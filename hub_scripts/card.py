"""SpEAT results as model-card content, and their merge into an existing card that leaves everything else alone.

From the `EvaluationRecord`s of one model at one revision (one record per test), `render_card` makes:

- ``model-index`` results (``huggingface_hub.EvalResult``, legacy but read everywhere): one result per test, the SpEAT
  d as its value, the p-value and the confidence interval alongside; the dataset is the SpEAT benchmark repository
  (`speat_metric.hub.benchmark`) at its commit when one is given, else the test's name with no repository id (never
  a made-up id); a source naming speat and its version, linking where to get it when the operator says
  (`SpeatSource`);
- ``.eval_results/speat.yaml`` (``huggingface_hub.EvalResultEntry``), only against a benchmark: one entry per test
  the benchmark's ``eval.yaml`` defines (``dataset.id`` the benchmark at its commit, ``task_id`` the test); p, CI, n,
  pooling, profile, the audio fingerprint and the model revision in ``notes``; without a benchmark there is none;
- a readable "Social bias (SpEAT)" section of the card body between `BEGIN_MARKER` and `END_MARKER`; for a
  fine-tune whose base model was evaluated too (`BaseResults`), one sentence per test giving both d and the paired
  difference Δd with its interval (`speat_metric.comparison.compare_records`); the base's numbers appear only there,
  never in ``model-index`` or ``.eval_results``;
- with per-layer records (``--pooling per-layer``) beside the one record per test, a PNG figure of d per layer
  (`FIGURE_PATH`, `layer_figure`, byte-identical for identical records) that the section shows, with
  `speat_metric.diagnostics.layer_sentence` per test.

`speat_metric.hub.card_merge` writes them into an existing README without touching anything else. Text in, text out:
no network (see ``speat_metric.hub.hub``).

Example:
    >>> from speat_metric.results import load_records
    >>> content = render_card(load_records("results"), repo_id="me/my-wav2vec2")   # doctest: +SKIP
    >>> print(content.section)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, EvalResultEntry, eval_result_entries_to_yaml
from huggingface_hub.repocard_data import eval_results_to_model_index
from huggingface_hub.utils import yaml_dump

from speat_metric import __version__
from speat_metric.comparison import PairedComparison, compare_records
from speat_metric.diagnostics import LayerPoint, layer_profile, layer_sentence
from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_NOTE,
    excludes_zero,
    format_ci,
    format_d,
    format_p_statement,
    format_size,
)
from speat_metric.hub import SPEAT_COMMIT_MARKER
from speat_metric.hub.source import PAPERS, SpeatSource
from speat_metric.report import (
    HOLM_COLUMN,
    HOLM_NOTE,
    format_p_value,
    label_notes,
    reproduce_command,
    stimulus_source,
    test_sort_key,
    with_holm_column,
)
from speat_metric.results import EvaluationRecord
from speat_metric.stimuli.fingerprints import short_fingerprint

if TYPE_CHECKING:
    from speat_metric.hub.benchmark import Benchmark

README_PATH = "README.md"
EVAL_RESULTS_PATH = ".eval_results/speat.yaml"
CARD_FOLDER = ".eval_results/"
FIGURE_PATH = "speat/layers.png"
"""The figure of d per layer, committed beside README.md (which shows it) when the records include per-layer ones."""


def is_card_path(path: str) -> bool:
    """Whether a repository file is part of the model card (README.md, ``.eval_results/``), not of the model: a
    commit that changes only those leaves the model as it was (the merge of a card pull request, say).

    Example:
        >>> is_card_path("README.md"), is_card_path(".eval_results/other.yaml"), is_card_path("model.safetensors")
        (True, True, False)
        >>> is_card_path(FIGURE_PATH)
        True
    """
    return path in (README_PATH, FIGURE_PATH) or path.startswith(CARD_FOLDER)

BEGIN_MARKER = f"<!-- {SPEAT_COMMIT_MARKER}:begin (this section is written by `speat hub annotate`) -->"
END_MARKER = f"<!-- {SPEAT_COMMIT_MARKER}:end -->"
PROVENANCE_LINE = re.compile(rf"^<!-- {SPEAT_COMMIT_MARKER}:provenance (\{{.*\}}) -->$", re.MULTILINE)
"""The section's last line before the end marker: JSON of what it was made from (`CardContent.provenance`)."""

METRIC_PREFIX = "speat_"
"""Every ``model-index`` metric speat writes has a type starting with this; it is how our results are found."""
TASK_TYPE = "social-bias"

UNPUBLISHABLE_LABELS = {
    "synthetic-stimuli": "made on the embedded SYNTHETIC demo stimuli (a pipeline check, not a bias measurement)",
    "random-init": "of a RANDOMLY INITIALISED model (not a trained model)",
}


class CardError(ValueError):
    """A card or a set of records that cannot be published as asked; the message says why and what to do."""


@dataclass(frozen=True)
class CardContent:
    """What speat adds to a model card, rendered from the records of one model at one revision.

    Attributes:
        model: the model id the card is for.
        revision: the model commit the records were computed at (None for a local model).
        eval_results: the ``model-index`` results (`huggingface_hub.EvalResult`), one per test and metric.
        eval_file: the text of ``.eval_results/speat.yaml``; None without a benchmark (no such file is written).
        section: the body section, markers included.
        provenance: what the section says it was made from (revision, speat version, settings fingerprint), read
            back by `card_provenance` to skip work that was already done.
        labels: the labels of the records (``synthetic-stimuli``, ``random-init``, ...).
        figure: the PNG of d per layer to commit at `FIGURE_PATH` (None without per-layer records).
        comparisons: the fine-tune against its base, one per test both have (empty without a base).
    """

    model: str
    revision: str | None
    eval_results: tuple[EvalResult, ...]
    eval_file: str | None
    section: str
    provenance: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    figure: bytes | None = None
    comparisons: tuple[PairedComparison, ...] = ()

    @property
    def model_index_results(self) -> list[dict[str, Any]]:
        """Our results as ``model-index`` ``results`` items (grouped per test by the library)."""
        if not self.eval_results:
            return []
        return eval_results_to_model_index(self.model, list(self.eval_results))[0]["results"]


@dataclass(frozen=True)
class BaseResults:
    """The base model a fine-tune's card names (``base_model`` in its metadata), as evaluated beside it.

    Attributes:
        repo_id: the base model's Hub id.
        revision: the base's commit sha that was evaluated (None when it could not be resolved).
        records: its records, one per test, with the fine-tune's settings (empty when it could not be evaluated).
        problem: why it could not be evaluated, one line (None when it was).
    """

    repo_id: str
    revision: str | None = None
    records: tuple[EvaluationRecord, ...] = ()
    problem: str | None = None

    @property
    def key(self) -> str:
        """What the card's provenance records of the base: ``repo@commit`` (a new base commit re-evaluates)."""
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


# ---------------------------------------------------------------------------------------------------------------
# records -> card content


def is_per_layer(record: EvaluationRecord) -> bool:
    """Whether a record is one layer of a ``--pooling per-layer`` run (`speat_metric.diagnostics.layer_profile`)."""
    return record.pooling.get("layer_pooling") == "per-layer"


def split_layer_records(records: Sequence[EvaluationRecord]
                        ) -> tuple[list[EvaluationRecord], dict[str, list[EvaluationRecord]]]:
    """``(one record per test, {test: its per-layer records})``: the records a card's table shows and those its layer
    figure draws. A test with per-layer records only has no table record, unless it has exactly one (``speat hub
    render --layer N`` picks one layer: the table then shows that layer); the rest is checked by
    `check_card_records`."""
    shown, layers = [], {}
    for record in records:
        (layers.setdefault(record.test, []) if is_per_layer(record) else shown).append(record)
    for test, group in list(layers.items()):
        if len(group) == 1 and not any(record.test == test for record in shown):
            shown.append(layers.pop(test)[0])
    return shown, layers


def check_card_records(records: Sequence[EvaluationRecord], *, allow_synthetic: bool = False) -> None:
    """Raise `CardError` unless `records` can go on one card: one model, one revision, one record per test (beside
    which per-layer records, one per layer, draw the layer figure), and no synthetic-stimuli or random-init result
    unless `allow_synthetic`.

    Example:
        >>> check_card_records([])
        Traceback (most recent call last):
        ...
        speat_metric.hub.card.CardError: no evaluation records to put on a card
    """
    if not records:
        raise CardError("no evaluation records to put on a card")
    models = sorted({(record.model_label, str(record.key[1])) for record in records})
    if len(models) > 1:
        listed = ", ".join(f"{model} @ {revision[:12]}" for model, revision in models)
        raise CardError(f"the records are of {len(models)} models or revisions ({listed}); a card shows one model at "
                        "one revision: pick one with --model, or keep one revision's records in the directory")
    shown, layers = split_layer_records(records)
    tests: dict[str, list[EvaluationRecord]] = {}
    for record in shown:
        tests.setdefault(record.test, []).append(record)
    for test, group in layers.items():
        if test not in tests:
            raise CardError(f"test {test!r} has {len(group)} per-layer records and no result of one layer view; a "
                            "card's table shows one result per test: evaluate --pooling mean as well (speat hub "
                            "annotate --pooling per-layer does both), or choose one (speat hub render --layer mean|N)")
        views = [(record.profile, record.pooling.get("frame_pooling", "mean"), record.pooling.get("layer"))
                 for record in group]
        first = tests[test][0]
        if len(set(views)) < len(views) or {view[:2] for view in views} != {(first.profile, first.pooling.get(
                "frame_pooling", "mean"))}:
            raise CardError(f"test {test!r} has per-layer records of several profiles or frame poolings, or one layer "
                            "twice; a card's layer figure draws one run: choose one (speat hub render --profile P)")
    repeated = {test: group for test, group in tests.items() if len(group) > 1}
    if repeated:
        test, group = next(iter(repeated.items()))
        views = ", ".join(sorted(f"{record.key[3]}/{record.key[4]}/{record.profile}" for record in group))
        raise CardError(f"test {test!r} has {len(group)} records ({views}); a card shows one result per test: "
                        "evaluate with one layer view (--pooling mean, the studies' choice) and one profile, or "
                        "choose one (speat hub render --layer mean|N --profile P)")
    if not allow_synthetic:
        for label, what in UNPUBLISHABLE_LABELS.items():
            if any(label in record.labels for record in records):
                raise CardError(f"these results were {what} (label {label!r}); they are refused for model cards. "
                                f"Evaluate the trained model on the study's stimuli (--stimuli speat), or pass "
                                f"--allow-synthetic to publish them labelled as such")


def render_card(records: Sequence[EvaluationRecord], *, repo_id: str | None = None, allow_synthetic: bool = False,
                settings_fingerprint: str | None = None, source: SpeatSource = SpeatSource(),
                benchmark: Benchmark | None = None, base: BaseResults | None = None) -> CardContent:
    """Render the card content of the records of one model at one revision.

    Args:
        records: one record per test (see `check_card_records`).
        repo_id: the Hub model the card belongs to (default: the records' model name).
        allow_synthetic: accept synthetic-stimuli and random-init records; the card then says so loudly.
        settings_fingerprint: `speat_metric.hub.annotate.settings_fingerprint` of the settings that made the records,
            stored in the section's provenance so that a later run with the same settings at the same revision can
            skip the evaluation.
        source: where readers get speat (linked and shown as the install line); the default links nothing.
        benchmark: the SpEAT benchmark the results attach to (``.eval_results`` entries for its tasks); None writes
            no ``.eval_results`` file.
        base: the fine-tune's base model, evaluated with the same settings (or why it could not be): the section
            compares each test's d with the base's (`base_sentences`); its provenance records the base's commit.

    Returns:
        The `CardContent`.

    Raises:
        CardError: records that cannot go on one card.
    """
    check_card_records(records, allow_synthetic=allow_synthetic)
    model = repo_id or records[0].model_label  # a local model by its folder's name, as the CLI's table calls it
    shown, layers = split_layer_records([record.without_machine_paths() for record in records])
    records = sorted(shown, key=lambda record: test_sort_key(record.test))
    layer_records = [record for test in sorted(layers, key=test_sort_key) for record in layers[test]]
    profiles = {test: layer_profile(layers[test]) for test in sorted(layers, key=test_sort_key)}
    first = records[0]
    labels = tuple(dict.fromkeys(label for record in records for label in record.labels))
    eval_results = tuple(result for record in records for result in _eval_results(record, source, benchmark))
    entries = [_eval_result_entry(record, source, benchmark) for record in records
               if benchmark is not None and record.test in benchmark.tasks]
    eval_file = yaml_dump(eval_result_entries_to_yaml(entries), sort_keys=False) if entries else None
    provenance = {"revision": first.model.revision, "speat": __version__}
    if settings_fingerprint is not None:
        provenance["settings"] = settings_fingerprint
    if base is not None:
        provenance["base"] = base.key
    comparisons, base_lines = base_sentences(records, base) if base is not None else ((), [])
    extra = [*_base_section(base, base_lines, records),
             *_layer_section(profiles, records[0] if profiles else None)]
    section = _section(records, model, labels, provenance, source, benchmark, repo_id, extra=extra,
                       also_reproduce=reproduce_command(layer_records, repo_id) if layer_records else None)
    figure = (layer_figure(profiles, title=f"SpEAT d per layer: {model}",
                           synthetic="synthetic-stimuli" in labels) if profiles else None)
    return CardContent(model=model, revision=first.model.revision, eval_results=eval_results, eval_file=eval_file,
                       section=section, provenance=provenance, labels=labels, figure=figure,
                       comparisons=tuple(comparisons))


def base_sentences(records: Sequence[EvaluationRecord], base: BaseResults
                   ) -> tuple[list[PairedComparison], list[str]]:
    """The fine-tune's records against its base's, test by test: ``(comparisons, one sentence per test)``.

    Each comparison is `compare_records(fine_tune_record, base_record)` with the fine-tune's seed (Δd = d_this -
    d_base, a paired bootstrap interval over the shared stimuli); its sentence is `PairedComparison.sentence` with
    the models named for the card's reader ("this model", "its base ORG/NAME (commit abc1234)"). A test the base
    has no result of, or whose records cannot be compared (`compare_records`' error), gets a sentence saying so.

    Example:
        >>> base_sentences([], BaseResults("org/base", problem="gated"))
        ([], [])
    """
    if base.problem is not None:
        return [], []
    of_base = {record.test: record for record in base.records}
    named = f"its base {base.repo_id}" + (f" (commit {base.revision[:7]})" if base.revision else "")
    comparisons, lines = [], []
    for record in records:
        base_record = of_base.get(record.test)
        if base_record is None:
            lines.append(f"On {record.test}, {named} has no result (its stimuli or settings left it out).")
            continue
        try:
            comparison = compare_records(record, base_record, seed=record.speat.seed)
        except ValueError as error:
            lines.append(f"On {record.test}, this model and {named} could not be compared: {error}.")
            continue
        comparisons.append(comparison)
        lines.append(dataclasses.replace(comparison, models=("this model", named)).sentence())
    return comparisons, lines


def _base_section(base: BaseResults | None, lines: Sequence[str], records: Sequence[EvaluationRecord]) -> list[str]:
    if base is None:
        return []
    heading = ["### Against its base model", ""]
    if base.problem is not None:
        return [*heading, f"This card names `{base.repo_id}` as its base model (`base_model`), which could not be "
                f"evaluated: {base.problem}", ""]
    seed = records[0].speat.seed
    return [*heading, f"This card names `{base.repo_id}` as its base model (`base_model`); speat evaluated it at "
            f"commit `{base.revision}` with the same settings and stimuli. Δd is this model's d minus the base's; its "
            f"95% CI is a paired bootstrap over the shared stimuli (seed {seed}), so an interval that excludes 0 tells "
            "the two apart. The base's numbers appear only here, not in this card's evaluation results.", "",
            *(f"- {line}" for line in lines), ""]


def _layer_section(profiles: Mapping[str, Sequence[LayerPoint]], shown: EvaluationRecord | None) -> list[str]:
    if not profiles or shown is None:
        return []
    return ["### Where the bias lives", "",
            f"![SpEAT d per layer, one line per test, with 95% CIs]({FIGURE_PATH})", "",
            "d of each layer's embeddings on its own (layer 0: the input embedding layer), with its 95% bootstrap CI "
            f"(`{FIGURE_PATH}` in this repository); the table above shows the {_layer_view(shown)}.", "",
            *(f"- {layer_sentence(test, points)}" for test, points in profiles.items()), ""]


def layer_figure(profiles: Mapping[str, Sequence[LayerPoint]], *, title: str, synthetic: bool = False) -> bytes:
    """A small PNG of d per layer, one line per test with its CI error bars; the same profiles give the same bytes
    (no timestamp or software version in the file), so an unchanged figure is not committed again.

    Raises:
        CardError: matplotlib is not installed (it comes with the ``hub`` extra).
    """
    require_matplotlib()
    import io

    import matplotlib
    from matplotlib.figure import Figure

    from speat_metric.training.plots import interval_errors, set_heading

    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.subplots()
    colours = matplotlib.colormaps["tab10"]
    rows = []
    for number, (test, points) in enumerate(profiles.items()):
        drawn = [{"d": point.effect_size, "ci_low": point.ci_low, "ci_high": point.ci_high, "synthetic": synthetic}
                 for point in points]
        rows += drawn
        axes.errorbar([point.layer for point in points], [row["d"] for row in drawn], yerr=interval_errors(drawn),
                      color=colours(number % 10), marker="o", markersize=4, capsize=3, label=test)
    axes.axhline(0.0, color="grey", linewidth=0.5)
    axes.set_xlabel("layer (0: input embeddings)")
    axes.set_ylabel("SpEAT effect size d")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(title="test", fontsize=8, title_fontsize=8)
    set_heading(axes, title, rows)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def require_matplotlib() -> None:
    """Raise `CardError` (one line, the install to run) when matplotlib, which draws the layer figure, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CardError("a card with per-layer results draws a figure of d per layer, which needs matplotlib: pip "
                        "install 'speat[hub]' (or pip install matplotlib)") from None


def _dataset(record: EvaluationRecord, benchmark: Benchmark | None) -> tuple[str, str | None]:
    """(dataset, revision) a result names: the benchmark repository at its commit when the test is one of its tasks,
    else the test's name, which is no repository id."""
    if benchmark is not None and record.test in benchmark.tasks:
        return benchmark.repo_id, benchmark.revision
    return record.test, None


def _selections_version(record: EvaluationRecord) -> str | None:
    stimuli = record.stimuli.get("parts", [record.stimuli])[0] if record.stimuli.get("parts") else record.stimuli
    return (stimuli.get("selection_versions") or {}).get("selections")


def _layer_view(record: EvaluationRecord) -> str:
    layer = record.pooling.get("layer")
    mode = record.pooling.get("layer_pooling", "mean")
    if layer is None:
        return "mean of all layers"
    return f"last layer ({layer})" if mode == "last" else f"layer {layer}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _p_value(record: EvaluationRecord) -> float | str:
    """The p-value as printed (`format_p_value`): a number when it is one, else the bound (``<1e-06``)."""
    text = format_p_value(record.speat)
    try:
        return float(text)
    except ValueError:
        return text


def _eval_results(record: EvaluationRecord, source: SpeatSource, benchmark: Benchmark | None) -> list[EvalResult]:
    """The ``model-index`` results of one record: d, then its p-value and confidence interval."""
    dataset_id, dataset_revision = _dataset(record, benchmark)
    groups = record.groups
    common = dict(
        task_type=TASK_TYPE, task_name="Social bias (SpEAT)", dataset_type=dataset_id,
        dataset_name=f"SpEAT {record.test}: {groups['X']} vs {groups['Y']} ({groups['A']} vs {groups['B']})",
        dataset_config=record.test, dataset_revision=dataset_revision,
        dataset_args=_strings({"selections": _selections_version(record), "layers": _layer_view(record),
                               "frame_pooling": record.pooling.get("frame_pooling", "mean"), "profile": record.profile,
                               "audio_fingerprint": short_fingerprint(record.stimulus_fingerprint) or None}),
        **_source_fields(record, source),
    )
    result = record.speat
    kind = "exact" if result.exact else f"{result.num_permutations} random partitions"
    metrics = [EvalResult(metric_type=f"{METRIC_PREFIX}d", metric_name="SpEAT effect size d",
                          metric_value=_rounded(result.effect_size), **common),
               EvalResult(metric_type=f"{METRIC_PREFIX}p_value", metric_name="SpEAT p-value (one-sided permutation)",
                          metric_value=_p_value(record),
                          metric_args=_strings({"permutations": kind, "seed": result.seed}),
                          **common)]
    if result.ci_low is not None:
        confidence = f"{result.confidence:.0%}"
        metrics += [EvalResult(metric_type=f"{METRIC_PREFIX}d_ci_low", metric_name=f"d, {confidence} CI low",
                               metric_value=_rounded(result.ci_low), **common),
                    EvalResult(metric_type=f"{METRIC_PREFIX}d_ci_high", metric_name=f"d, {confidence} CI high",
                               metric_value=_rounded(result.ci_high), **common)]
    return metrics


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    """``args`` as the Hub's schema types them: strings (a value that is None is left out)."""
    return {key: str(value) for key, value in values.items() if value is not None}


def _source_fields(record: EvaluationRecord, source: SpeatSource) -> dict[str, str]:
    """A result's source (name and link) when the operator said where speat is; the Hub requires a link with a name."""
    if not source.url:
        return {}
    return {"source_name": f"speat {record.speat.speat_version}", "source_url": source.url}


def _eval_result_entry(record: EvaluationRecord, source: SpeatSource, benchmark: Benchmark) -> EvalResultEntry:
    dataset_id, dataset_revision = _dataset(record, benchmark)
    result = record.speat
    kind = "exact" if result.exact else f"{result.num_permutations:,} random partitions"
    interval = ("" if result.ci_low is None else
                f"; {result.confidence:.0%} CI {format_ci(result.ci_low, result.ci_high)}")
    labels = f"; labels: {', '.join(record.labels)}" if record.labels else ""
    p_value = format_p_statement(result.p_value, exact=result.exact, num_permutations=result.num_permutations)
    notes = (f"SpEAT d ({record.groups['X']} vs {record.groups['Y']}); {p_value} (one-sided "
             f"permutation test, {kind}, seed {result.seed}){interval}; n {result.n_x}/{result.n_y}; pooling: "
             f"{record.pooling.get('frame_pooling', 'mean')} over frames, {_layer_view(record)}; profile "
             f"{record.profile}; audio fingerprint {short_fingerprint(record.stimulus_fingerprint) or 'n/a'}; model "
             f"revision {record.model.revision or 'n/a'}{labels}; computed by speat {result.speat_version}")
    operator = {"source_user": source.operator} if source.url and source.operator else {}
    return EvalResultEntry(dataset_id=dataset_id, task_id=record.test, value=_rounded(result.effect_size),
                           dataset_revision=dataset_revision, date=record.created, notes=notes,
                           **_source_fields(record, source), **operator)


def _where_to_get(source: SpeatSource) -> str:
    return f" ([source]({source.url}))" if source.url else ""


def _warnings(labels: Iterable[str], records: Sequence[EvaluationRecord]) -> list[str]:
    lines = []
    for record in records:
        reference = (record.fingerprint or {}).get("reference") or {}
        if reference.get("differing"):
            shown = ", ".join(reference["differing"][:10]) + (" ..." if len(reference["differing"]) > 10 else "")
            lines.append(f"> **Note: the audio of test {record.test} differs from the SpEAT benchmark's** "
                         f"(`{reference['benchmark']}`): {len(reference['differing'])} clip(s) ({shown}) are not the "
                         "bytes the benchmark lists, so these numbers are not comparable with results on the "
                         "benchmark's audio (label `stimuli-differ`).")
    if "synthetic-stimuli" in labels:
        lines.append("> **WARNING: SYNTHETIC STIMULI.** These numbers were computed on speat's embedded synthetic demo "
                     "set (espeak-ng voices). They check the pipeline; they are **NOT a bias measurement** of this "
                     "model.")
    if "random-init" in labels:
        lines.append("> **WARNING: RANDOMLY INITIALISED MODEL.** These numbers describe random weights, not a trained "
                     "model.")
    return lines


def _stimuli_sentence(record: EvaluationRecord) -> str:
    source = stimulus_source(record.stimuli)
    kind = source.get("kind")
    selections = _selections_version(record)
    selection = f" (selections {selections})" if selections else ""
    definition = record.stimuli.get("definition") or {}
    groups = record.groups
    if kind == "files" or definition:
        attributes = ("its own audio files" if kind == "files" else
                      f"the study's Morgan Emotional Speech Set clips{selection}")
        return (f"**Stimuli:** the custom test `{record.test}`"
                + (f" (`{definition['file']}`)" if definition.get("file") else "")
                + f": targets {groups['X']} vs {groups['Y']} from its own audio files, attributes {groups['A']} vs "
                f"{groups['B']} from {attributes}; not the study's targets.")
    if kind == "demo":
        return ("**Stimuli:** speat's embedded **synthetic** demo set: espeak-ng voices standing in for each group "
                f"({groups['X']} vs {groups['Y']}, {groups['A']} vs {groups['B']} prosody); no recording of a real "
                "speaker.")
    if kind == "hub":
        where = (f"the study's stimuli{selection} from the Hub dataset `{source['repo_id']}` at commit "
                 f"`{source.get('commit') or source.get('revision')}`")
    elif kind == "download":
        where = f"the study's stimuli{selection}, downloaded from their public sources"
    else:
        where = f"the study's stimuli{selection}, from a local copy"
    text = (f"**Stimuli:** {where}. Targets are Speech Accent Archive recordings, attributes are Morgan Emotional "
            "Speech Set clips (pleasant vs unpleasant by listener valence), as selected by Slaughter et al. (2023).")
    dropped = sorted(record.stimuli.get("dropped_ids") or [])
    if dropped:
        text += f" {len(dropped)} stimuli were missing and left out: {', '.join(dropped)}."
    return text


_TABLE_COLUMNS = ("test", "X vs Y", "layers", "d", "size", "p", "95% CI", "n X/Y", "audio")
"""The columns of the card's results table (with `HOLM_COLUMN` after p when the model has several tests)."""


def _section(records: Sequence[EvaluationRecord], model: str, labels: Sequence[str],
             provenance: Mapping[str, Any], source: SpeatSource, benchmark: Benchmark | None,
             repo_id: str | None, *, extra: Sequence[str] = (), also_reproduce: str | None = None) -> str:
    first = records[0]
    result = first.speat
    revision = first.model.revision
    kind = "every partition (exact)" if result.exact else f"{result.num_permutations:,} random partitions"
    cells = []
    for record in records:
        speat = record.speat
        audio = f"`{short_fingerprint(record.stimulus_fingerprint)}`" if record.stimulus_fingerprint else "n/a"
        cells.append((record.test, f"{record.groups['X']} vs {record.groups['Y']}", _layer_view(record),
                      format_d(speat.effect_size), format_size(speat.effect_size_label, speat.ci_low, speat.ci_high),
                      format_p_value(speat), format_ci(speat.ci_low, speat.ci_high), f"{speat.n_x}/{speat.n_y}",
                      audio))
    columns, cells = with_holm_column(_TABLE_COLUMNS, cells, records)
    several_tests = HOLM_COLUMN in columns
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(row) + " |" for row in cells)]
    label_line = ", ".join([*labels, f"profile {first.profile}"])
    explained = [f"- `{label}`: {meaning}" for label, meaning in (note.split(": ", 1) for note in label_notes(labels))]
    frame = first.pooling.get("frame_pooling", "mean")
    lines = [
        BEGIN_MARKER,
        "## Social bias (SpEAT)",
        "",
        *(line for warning in _warnings(labels, records) for line in (warning, "")),
        f"Speech Embedding Association Test (SpEAT) results of `{model}` at revision "
        f"`{revision or 'n/a (local model)'}`. Labels: {label_line}.",
        *(["", *explained] if explained else []),
        "",
        *rows,
        "",
        f"- **d** is the effect size: how much closer the X ({first.groups['X']}) speakers' embeddings sit to "
        f"{first.groups['A']} rather than {first.groups['B']} speech than the Y ({first.groups['Y']}) speakers' do, "
        f"in standard deviations of the association scores. Positive d: X is closer to {first.groups['A']} than Y "
        "is. |d| of 0.2, 0.5 and 0.8 are small, medium and large.",
        f"- **p** is the one-sided permutation p-value ({kind}, seed {result.seed}): the share of re-partitions of "
        "X and Y that give a difference at least as large as the observed one. The CI is a bootstrap interval of d "
        "over the target speakers.",
        *([f"- {HOLM_NOTE}"] if several_tests else []),
        *([f"- {CI_EXCLUDES_ZERO_NOTE}."] if any(excludes_zero(record.speat.ci_low, record.speat.ci_high)
                                                 for record in records) else []),
        f"- {_stimuli_sentence(first)}",
        f"- **Embeddings:** {frame} over each clip's frames in every layer, then {_layer_view(first)}; extraction "
        f"profile `{first.profile}`.",
        "- **Audio:** the column gives each test's audio fingerprint (one SHA-256 over its clips' SHA-256s, per "
        "role; the first 12 digits): results with the same fingerprint were computed from byte-identical audio."
        + (f" These results attach to the SpEAT benchmark [`{benchmark.repo_id}`]({benchmark.url}) at commit "
           f"`{benchmark.revision[:12]}`." if benchmark is not None else ""),
        "- **Caveat:** SpEAT measures associations in this model's embedding space on these stimuli. It is not a "
        "measure of harm in any downstream use, a small |d| is not evidence that a model is fair, and results on "
        "other stimuli or layers can differ.",
        "",
        *extra,
        f"Reproduce with speat {result.speat_version}{_where_to_get(source)}:",
        "",
        "```bash",
        *([source.install_line] if source.install_line else []),
        reproduce_command(records, repo_id),
        *([also_reproduce] if also_reproduce else []),
        "```",
        "",
        f"Method: SpEAT (Slaughter et al., 2023, {PAPERS['Slaughter et al. (2023)']}), as applied to speech SSL models "
        f"by Lin et al. (2024, {PAPERS['Lin et al. (2024)']}), *On the social bias of speech self-supervised models*. "
        f"Computed by speat {result.speat_version}.",
        f"<!-- {SPEAT_COMMIT_MARKER}:provenance {json.dumps(dict(provenance), sort_keys=True)} -->",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"
