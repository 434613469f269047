"""Bias-aware pruning (``speat prune debias``): remove the heads and FFN rows that carry a bias, under a quality
budget, and measure the result on held-out speakers only, against controls.

The loop, for each speaker fold (`speat_metric.pruning.attribution.speaker_folds`: the target speakers of every test
split into a selection and a held-out part, matched pairs together) and each seed::

    gates on every head and FFN row (attribution.attach_gates)
    repeat up to max_steps:
        a   = attribution of sum_tests |d| on the SELECTION stimuli of the chosen tests (attribution.attribute)
        C   = the `step` most bias-reducing components of the allowed kinds (none that would empty a layer)
        close C; q = quality on the held-out audio (the objective's loss on recordings never trained on)
        if q exceeds the budget: reopen C and stop (this step is not taken)
        slice C out (keep_heads / keep_ffn_dims), fine-tune `fine_tune_steps` steps (the shared training loop)
        SpEAT of every test (chosen and tracked) on the HELD-OUT stimuli (evaluate_tests), paired Δd vs the unpruned
        model (compare_records), into each record's ``compression``

The quality budget: with the teacher objective (the default) the held-out loss is the distance from the unpruned
model's hidden states (L1 + cosine distance, 0 for the unpruned model) and must stay <= ``budget``; with the native
objective, its relative increase (L - L0) / L0 must stay <= ``budget``.

Controls (``--no-controls`` skips them), each at the sparsity of the debias run (the same parameters removed at each
step, fine-tuned the same way) and recorded as ``debias-control:<name>``: ``shuffled-labels`` (the same attribution
with the X/Y labels of the selection targets permuted), ``random`` (random components of the same kinds and counts),
``magnitude-rows`` (Lin et al.'s L1 rows) and ``property-neurons`` (FFN rows whose activations differ most between X
and Y) with as many rows as match the parameters removed, and ``leace`` (LEACE erasure of the selection X/Y
direction from every layer's pooled embeddings; no parameter removed). `speat_metric.pruning.baselines` chooses them.

Run directory (``--out``)::

    config.yaml                            the resolved settings
    fold-<f>/unpruned/results/*.json       the unpruned model on fold f's held-out stimuli (step 0)
    fold-<f>/seed-<s>/<method>/results/    the records of each step (checkpoints are removed once measured)
    final/ (final.ckpt for MelHuBERT)      the debias model of fold 0 and the first seed (speat evaluate RUN/final)
    pareto.png, report.md, summary.csv
    held_out.json                          the held-out recordings of the quality measure
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speat_metric.adapters.base import EncoderOutput, SpeechEncoder
from speat_metric.pruning.config import CONFIG_DIRECTORY, ObjectiveConfig, OptimizerConfig
from speat_metric.training.config import (
    ConfigError,
    DataConfig,
    RunConfig,
    TrackingConfig,
    TrainingConfig,
    check_positive,
    check_tracking,
    check_training,
    merge,
    read_yaml,
    set_dotted,
    with_run_settings,
)
from speat_metric.training.config import build as build_config

logger = logging.getLogger(__name__)

METHOD = "debias"
CONTROL_PREFIX = "debias-control:"
ABLATION_DRAWS = 10
"""Random sets the ablation check compares the first step's components with (one forward pass of the held-out
stimuli each; `attribution.ablation_check`)."""
SHUFFLINGS = 8
"""Shufflings of X/Y averaged by the shuffled-label control's attribution (`attribution.attribute`)."""
KINDS = {"heads": "head", "rows": "row"}
"""``--kinds`` values and the `Component.kind` each names."""
CONTROLS = ("shuffled-labels", "random", "magnitude-rows", "property-neurons", "leace")
DEFAULTS: dict[str, Any] = {"optimizer": {"lr": 1.0e-5}, "objective": {"name": "teacher"},
                            "training": {"max_steps": None, "save_state_every": None}}
"""What a debias run changes of ``pruning/configs/common.yaml``: Lin et al.'s row learning rate and the teacher
objective (its budget is the simplest to state: the distance from the unpruned model)."""


@dataclass(frozen=True)
class DebiasConfig(RunConfig):
    """A whole debias run.

    Attributes:
        model, out, revision, mean_std: as for ``speat prune``.
        tests: the tests whose |d| the pruning reduces (``--tests``); track: tests only measured (``--track``).
        folds: speaker folds (each held out once); seeds: replicates per fold (seeds 0 .. seeds-1).
        budget: the quality tolerance (module docstring); step: components removed per step; max_steps: steps at
            most; fine_tune_steps: optimiser steps after each removal; kinds: ``heads`` and/or ``rows``.
        controls: run the controls too; resamples: bootstrap resamples of each paired Δd.
        verify: the components of largest first-order score whose exact effect on sum |d| is measured before
            ranking (`speat_metric.pruning.attribution.attribute`; one forward pass of the selection fold each).
    """

    model: str
    out: str
    revision: str | None = None
    mean_std: str | None = None
    tests: tuple[str, ...] = ("gender", "age")
    track: tuple[str, ...] = ()
    folds: int = 3
    seeds: int = 3
    budget: float = 0.05
    step: int = 4
    max_steps: int = 10
    fine_tune_steps: int = 100
    kinds: tuple[str, ...] = ("heads", "rows")
    controls: bool = True
    resamples: int = 2000
    verify: int = 16
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        check_debias_config(self)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))


def check_debias_config(config: DebiasConfig) -> None:
    """Every value in range (`ConfigError`, one line naming the option and the value)."""
    if isinstance(config.budget, bool) or not isinstance(config.budget, (int, float)) or config.budget < 0:
        raise ConfigError(f"--budget must be a number >= 0 (the quality tolerance), got {config.budget!r}")
    if isinstance(config.folds, bool) or not isinstance(config.folds, int) or config.folds < 2:
        raise ConfigError(f"--folds must be at least 2 (each fold's speakers are held out once while the others "
                          f"select), got {config.folds!r}")
    check_positive(config.seeds, "--seeds (replicates per fold)")
    check_positive(config.step, "--step (components removed per step)")
    check_positive(config.max_steps, "--max-steps (debias steps at most)")
    check_positive(config.fine_tune_steps, "--fine-tune-steps", zero=True)
    check_positive(config.resamples, "resamples")
    check_positive(config.verify, "--verify (components whose exact effect is measured)", zero=True)
    if not config.tests:
        raise ConfigError("--tests is empty: name the tests whose bias to reduce (gender, age, native or test files)")
    if unknown := [kind for kind in config.kinds if kind not in KINDS]:
        raise ConfigError(f"--kinds {','.join(config.kinds)}: unknown {', '.join(unknown)}; use heads, rows or "
                          "heads,rows")
    if not config.kinds:
        raise ConfigError("--kinds is empty; use heads, rows or heads,rows")
    if both := sorted(set(config.tests) & set(config.track)):
        raise ConfigError(f"--track {','.join(config.track)} repeats --tests {', '.join(both)}: a test is either "
                          "reduced or tracked")
    if config.data.held_out.fraction == 0:
        raise ConfigError("data.held_out.fraction is 0: debias needs held-out audio to measure the quality budget on")
    if config.objective.name not in ("native", "teacher"):
        raise ConfigError(f"objective.name (--objective) must be teacher or native for debias, got "
                          f"{config.objective.name!r}")
    check_training(config.training)
    check_tracking(config.tracking)


def load_debias_config(*, model: str, out: str | Path, data: str | None, path: str | Path | None = None,
                       overrides: Mapping[str, Any] | None = None, revision: str | None = None,
                       mean_std: str | None = None) -> DebiasConfig:
    """``configs/common.yaml`` with `DEFAULTS`, a ``--config`` file's keys, then the command line's `overrides`
    (dotted keys; ``tests`` and ``track`` set ``tracking.tests`` to both)."""
    merged = merge(read_yaml(CONFIG_DIRECTORY / "common.yaml"), DEFAULTS)
    if path is not None:
        merged = merge(merged, read_yaml(Path(path)))
    settings = {"model": model, "out": str(out), "revision": revision, "mean_std": mean_std}
    merged = with_run_settings(merged, settings, data=data, overrides=overrides, override=set_dotted)
    for name in ("tests", "track"):  # "a,b" from the command line
        if isinstance(merged.get(name), str):
            merged[name] = [part.strip() for part in merged[name].split(",") if part.strip()]
    merged.setdefault("tracking", {})["tests"] = [*merged.get("tests", DebiasConfig.tests),
                                                  *merged.get("track", ())]
    return build_config(DebiasConfig, merged, where=str(path) if path else "the configuration")


def quality_loss(loss: float, base_loss: float, objective: str) -> float:
    """What the budget bounds: the teacher objective's held-out loss itself (0 for the unpruned model), or the native
    objective's relative increase (loss - base) / base.

    Example:
        >>> quality_loss(0.03, 0.0, "teacher"), quality_loss(2.2, 2.0, "native")
        (0.03, 0.10000000000000009)
    """
    return loss if objective == "teacher" else (loss - base_loss) / base_loss


# ----------------------------------------------------------------------------------------------------------------
# Components: choosing, removing physically, counting parameters


def component_parameters(target: Any, kind: str) -> int:
    """Parameters one head or one FFN row holds: a head its q/k/v rows and biases and its output-projection columns,
    a row its first-layer row and bias and its second-layer column."""
    layer = target.layers()[0]
    hidden = layer.query.in_features
    if kind == "head":
        biases = sum(linear.bias is not None for linear in (layer.query, layer.key, layer.value))
        return layer.head_dim * (4 * hidden + biases)
    return 2 * hidden + (layer.intermediate.bias is not None)


def removable(target: Any, ranked: Sequence[Any], count: int, kinds: Sequence[str]) -> list[Any]:
    """The first `count` components of `ranked` of the allowed `kinds` (``head``/``row``) whose removal leaves every
    layer at least one head and one FFN row."""
    layers = target.layers()
    left = {("head", number): layer.num_heads for number, layer in enumerate(layers)}
    left |= {("row", number): layer.ffn_dim for number, layer in enumerate(layers)}
    chosen = []
    for component in ranked:
        if len(chosen) == count:
            break
        key = (component.kind, component.layer)
        if component.kind in kinds and left[key] > 1:
            left[key] -= 1
            chosen.append(component)
    return chosen


@dataclass
class Removal:
    """What a run has removed so far, in original indices (heads: among the layer's original heads; rows: among
    its original FFN dimensions), and how to slice more out of the current model."""

    rows: list[list[int]]
    removed: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, target: Any) -> Removal:
        return cls(rows=[list(range(layer.ffn_dim)) for layer in target.layers()])

    def apply(self, target: Any, components: Sequence[Any]) -> list[dict[str, Any]]:
        """Slice `components` (indices among the current heads and rows) out of `target`; return them in original
        indices (also appended to `removed`)."""
        from speat_metric.training.slicing import keep_ffn_dims, keep_heads

        done = []
        for number, layer in enumerate(target.layers()):
            heads = {component.index for component in components if component.kind == "head"
                     and component.layer == number}
            rows = {component.index for component in components if component.kind == "row"
                    and component.layer == number}
            if heads:
                original = layer.kept_heads
                done += [{"kind": "head", "layer": number, "index": original[head]} for head in sorted(heads)]
                keep_heads(layer, [head for head in range(layer.num_heads) if head not in heads])
            if rows:
                done += [{"kind": "row", "layer": number, "index": self.rows[number][row]} for row in sorted(rows)]
                self.rows[number] = [index for row, index in enumerate(self.rows[number]) if row not in rows]
                keep_ffn_dims(layer, [row for row in range(layer.ffn_dim) if row not in rows])
        self.removed += done
        return done


def rows_for_parameters(target: Any, parameters: int) -> int:
    """How many FFN rows hold about `parameters` parameters (a rows-only control at the debias run's sparsity)."""
    return max(1, round(parameters / component_parameters(target, "row")))


def spread_rows(target: Any, count: int) -> list[int]:
    """`count` rows spread over the layers as evenly as their widths allow (per-layer counts, one row left)."""
    widths = [layer.ffn_dim - 1 for layer in target.layers()]
    per_layer = [0] * len(widths)
    for turn in range(count):
        open_layers = [number for number, width in enumerate(widths) if per_layer[number] < width]
        if not open_layers:
            break
        per_layer[open_layers[turn % len(open_layers)]] += 1
    return per_layer


# ----------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class RunResult:
    """One (fold, seed, method) trajectory: per step, the parameters removed, the held-out loss and each test's
    held-out d and paired Δd."""

    fold: int
    seed: int
    method: str
    points: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""


@dataclass
class DebiasSummary:
    """What a debias run made."""

    run_dir: Path
    results: list[RunResult] = field(default_factory=list)
    final: str | None = None
    report: Path | None = None
    figure: Path | None = None
    ablation: dict[int, str] = field(default_factory=dict)
    """The ablation check of each fold's first step, as a sentence (``RUN/fold-<f>/attribution.md``)."""


def debias(config: DebiasConfig, *, progress: bool = True) -> DebiasSummary:
    """Run ``speat prune debias`` (module docstring): every fold and seed, the controls, the report and figure.

    Raises:
        ValueError: bad data, model, tests or settings, or too few speakers for the folds, all before training.
    """
    from speat_metric.files import atomic_write_text
    from speat_metric.pruning.attribution import speaker_folds
    from speat_metric.pruning.objectives import build_objective
    from speat_metric.training.bias_tracking import HeldOutLoss
    from speat_metric.training.checkpoints import RUN_CONFIG, check_new_run
    from speat_metric.training.data import RandomCrops, make_dataloader, run_held_out_split
    from speat_metric.training.loop import open_run
    from speat_metric.training.models import load_trainable_encoder

    run_dir = Path(config.out)
    check_new_run(run_dir)
    training = config.training
    accelerator, audio, tracker = open_run(run_dir, data=config.data, training=training, tracking=config.tracking,
                                           mean_std=config.mean_std, report_to=None, progress=progress)
    # The folds before anything heavy: too few speakers is an error now.
    folds = {name: speaker_folds(tracker.tests[name], folds=config.folds, seed=config.data.held_out.seed)
             for name in tracker.tests}
    target = load_trainable_encoder(config.model, revision=config.revision, mean_std=config.mean_std,
                                    command="speat prune debias")
    objective = build_objective(config.objective.name, target, config.objective, seed=training.seed,
                                revision=config.revision)
    audio = audio.check_files(min_seconds=training.min_seconds, progress=progress)
    split = run_held_out_split(audio, config.data.held_out)
    crop_seconds = training.for_family("crop_seconds", target.family)
    batch_size = training.for_family("batch_size", target.family)
    held_out = HeldOutLoss(split, crop_seconds=crop_seconds, min_seconds=training.min_seconds, batch_size=batch_size,
                           prepare=objective.batch_preparer())
    held_out.collate = objective.with_labels(held_out.collate, held_out.crops)
    if accelerator.is_main_process:
        atomic_write_text(run_dir / RUN_CONFIG, config.to_yaml())
        held_out.write_list(run_dir)

    def dataloader(seed: int):
        crops = RandomCrops(split.train, crop_seconds=crop_seconds, min_seconds=training.min_seconds, seed=seed)
        return make_dataloader(crops, batch_size=batch_size, prepare=objective.batch_preparer(),
                               num_workers=training.num_workers, num_processes=accelerator.num_processes)

    # --tests and --track as test names (a custom test's file gives its own name), in the order given
    chosen = list(tracker.tests)[:len(config.tests)]
    context = _Context(config, accelerator, tracker, held_out, dataloader, base_parameters=target.base_parameters,
                       chosen=chosen, progress=progress)
    context.base_loss = context.quality(target, objective)["held_out_loss"]
    summary = DebiasSummary(run_dir)
    for fold_number in range(config.folds):
        fold = {name: folds[name][fold_number] for name in folds}
        base = context.evaluate_unpruned(fold_number, fold)
        for seed in config.seed_list:
            result, schedule, last = context.run(METHOD, fold_number, seed, fold, base)
            summary.results.append(result)
            if fold_number == 0 and seed == config.seed_list[0] and last is not None:
                summary.final = _keep_final(last, run_dir)
            if config.controls and schedule:  # a debias run that took no step has no sparsity to match
                for control in CONTROLS:
                    if control == "leace":
                        continue
                    summary.results.append(context.run(CONTROL_PREFIX + control, fold_number, seed, fold, base,
                                                       schedule=schedule)[0])
        if config.controls:
            summary.results += context.leace(fold_number, fold, base)
    summary.ablation = dict(context.ablation_sentences)
    if accelerator.is_main_process:
        summary.figure = write_pareto(summary.results, run_dir)
        summary.report = write_report(summary, config, run_dir, chosen=chosen)
        write_summary_csv(summary.results, run_dir)
    accelerator.end_training()
    return summary


def _keep_final(checkpoint: Path, run_dir: Path) -> str:
    """Copy the checkpoint to ``RUN/final`` (``final.ckpt`` for a file); return the model string."""
    if checkpoint.is_dir():
        shutil.copytree(checkpoint, run_dir / "final")
        return str(run_dir / "final")
    shutil.copy2(checkpoint, run_dir / "final.ckpt")
    return f"melhubert:{run_dir / 'final.ckpt'}"


@dataclass
class _Context:
    """The parts every (fold, seed, method) run shares, and the runs themselves."""

    config: DebiasConfig
    accelerator: Any
    tracker: Any
    held_out: Any
    dataloader: Callable[[int], Any]
    base_parameters: int
    chosen: list[str]
    progress: bool = True
    base_loss: float = 0.0
    ablation_sentences: dict[int, str] = field(default_factory=dict)

    def quality(self, target: Any, objective: Any) -> dict[str, Any]:
        module = objective.trainable
        return self.held_out.measure(module, lambda batch: objective.loss(module, batch), accelerator=self.accelerator)

    def exceeds(self, loss: float) -> bool:
        return quality_loss(loss, self.base_loss, self.config.objective.name) > self.config.budget

    def write_attribution(self, fold_number: int, fold: Mapping[str, Any], adapter: Any, gates: Any,
                          attribution: Any, candidates: Sequence[Any]) -> None:
        """``RUN/fold-<f>/attribution.md`` and ``.png``: the unpruned model's attribution on the selection speakers
        (table, per-layer maps) and the ablation check of the first step's components on the held-out speakers
        (they against random sets of the same kinds and per-layer counts)."""
        from speat_metric.files import atomic_write_text
        from speat_metric.pruning.attribution import ablation_check, attribution_figure

        directory = Path(self.config.out) / f"fold-{fold_number}"
        directory.mkdir(parents=True, exist_ok=True)
        held_out = {name: part for name, part in self.held_out_tests(fold).items() if name in self.chosen}
        check = ablation_check(adapter, gates, held_out, candidates, random_draws=ABLATION_DRAWS, seed=fold_number)
        atomic_write_text(directory / "attribution.md", "\n".join([
            f"# Attribution of fold {fold_number} (unpruned model, selection speakers)", "",
            attribution.table(), "", "## The ablation check (held-out speakers)", "", check.sentence(), ""]))
        attribution_figure(attribution).savefig(directory / "attribution.png", dpi=100, metadata={"Software": None})
        self.ablation_sentences[fold_number] = check.sentence()

    def chosen_tests(self, fold: Mapping[str, Any]) -> dict[str, Any]:
        return {name: fold[name].selection for name in self.chosen}

    def held_out_tests(self, fold: Mapping[str, Any]) -> dict[str, Any]:
        return {name: part.held_out for name, part in fold.items()}

    def evaluate_unpruned(self, fold_number: int, fold: Mapping[str, Any]) -> dict[str, Any]:
        """The unpruned model on the fold's held-out stimuli: one record per test (step 0)."""
        directory = Path(self.config.out) / f"fold-{fold_number}" / "unpruned"
        tracker = self.tracker.on_stimuli(self.held_out_tests(fold), directory / "results")
        records = tracker.evaluate(self.config.model, compression={
            "method": METHOD, "step": 0, "fold": fold_number, "seed": None, "removed": [], "parameters_removed": 0,
            "base_parameters": self.base_parameters, "parameters": self.base_parameters,
            "held_out_loss": self.base_loss, "quality_loss": 0.0, "config": self.config.to_dict()})
        return {record.test: record for record in records}

    def run(self, method: str, fold_number: int, seed: int, fold: Mapping[str, Any], base: Mapping[str, Any], *,
            schedule: Sequence[Sequence[Any]] | None = None) -> tuple[RunResult, list[list[Any]], Path | None]:
        """One trajectory. The debias method chooses by attribution under the budget; a control (`schedule`: the
        debias run's components per step) removes as many parameters per step, chosen its own way."""
        from accelerate.utils import set_seed

        from speat_metric.pruning.attribution import attach_gates, attribute
        from speat_metric.pruning.objectives import build_objective
        from speat_metric.training.models import load_trainable_encoder

        config = self.config
        set_seed(seed, device_specific=True)
        target = load_trainable_encoder(config.model, revision=config.revision, mean_std=config.mean_std)
        objective = build_objective(config.objective.name, target, config.objective, seed=seed,
                                    revision=config.revision)
        objective.to(self.accelerator.device)
        result = RunResult(fold_number, seed, method)
        adapter = self.adapter(target)
        removal, steps_taken, last = Removal.of(target), [], None
        loader = self.dataloader(seed)
        kinds = [KINDS[kind] for kind in config.kinds]
        planned = config.max_steps if schedule is None else len(schedule)
        for step in range(1, planned + 1):
            if schedule is None:
                gates = attach_gates(target)
                try:
                    attribution = attribute(adapter, gates, self.chosen_tests(fold), verify=self.config.verify)
                    candidates = removable(target, attribution.ranked(), config.step, kinds)
                    if not candidates:
                        result.stopped = f"step {step}: no component left to remove"
                        break
                    if step == 1 and seed == config.seed_list[0]:
                        self.write_attribution(fold_number, fold, adapter, gates, attribution, candidates)
                    gates.close(candidates)
                    closed = self.quality(target, objective)["held_out_loss"]
                    if self.exceeds(closed):
                        lost = quality_loss(closed, self.base_loss, config.objective.name)
                        result.stopped = (f"step {step}: removing {len(candidates)} more components would take the "
                                          f"held-out quality loss to {lost:.4g} > budget {config.budget:g}; undone")
                        gates.reset()
                        break
                finally:
                    gates.remove()
            else:
                candidates = self.control_components(method, target, adapter, schedule[step - 1], fold,
                                                     seed * 1000 + step)
            done = removal.apply(target, candidates)
            steps_taken.append(list(candidates))
            self.fine_tune(target, objective, loader, seed)
            quality = self.quality(target, objective)
            last = self.measure(target, method, fold_number, seed, step, fold, base, removal, done, quality, result)
        else:
            result.stopped = result.stopped or f"max steps ({planned}) reached"
        logger.info("%s fold %d seed %d: %s", method, fold_number, seed, result.stopped)
        return result, steps_taken, last

    def adapter(self, target: Any) -> Any:
        """The speat adapter of the model (its inputs, layers and profile, as ``speat evaluate``) running `target`'s
        encoder itself, so that attribution and property neurons see the model being pruned."""
        from speat_metric.adapters import load_encoder

        config = self.config
        adapter = load_encoder(config.model, revision=config.revision, mean_std_path=config.mean_std,
                               profile=config.tracking.profile)
        adapter.model = target.encoder
        return adapter

    def control_components(self, method: str, target: Any, adapter: Any, debias_step: Sequence[Any],
                           fold: Mapping[str, Any], seed: int) -> list[Any]:
        """A control's components for one step: as many heads and rows as the debias step for the shuffled-label
        and random controls; as many rows as hold the same parameters for the rows-only controls."""
        from speat_metric.pruning import baselines
        from speat_metric.pruning.attribution import attach_gates, attribute

        name = method.removeprefix(CONTROL_PREFIX)
        counts = {kind: sum(component.kind == kind for component in debias_step) for kind in ("head", "row")}
        if name == "shuffled-labels":
            gates = attach_gates(target)
            try:
                # Averaged over shufflings: one shuffling can make removing a dominant component look useful.
                shufflings = [seed * SHUFFLINGS + number for number in range(SHUFFLINGS)]
                ranked = attribute(adapter, gates, self.chosen_tests(fold), labels_shuffled_seed=shufflings,
                                   verify=self.config.verify).ranked()
            finally:
                gates.remove()
            return [*removable(target, [c for c in ranked if c.kind == "head"], counts["head"], ["head"]),
                    *removable(target, [c for c in ranked if c.kind == "row"], counts["row"], ["row"])]
        if name == "random":
            chosen = []
            for kind, count in counts.items():
                if count:
                    drawn = baselines.random_components(target.encoder, count, kind, seed)
                    chosen += removable(target, drawn, count, [kind])
            return chosen
        parameters = sum(component_parameters(target, kind) * count for kind, count in counts.items())
        rows = rows_for_parameters(target, parameters)
        if name == "magnitude-rows":
            ranked = baselines.magnitude_rows(target.encoder, rows)
        else:
            ranked = baselines.property_neurons(adapter, self.chosen_tests(fold), rows)
        return removable(target, ranked, rows, ["row"])

    def fine_tune(self, target: Any, objective: Any, loader: Any, seed: int) -> None:
        """`fine_tune_steps` optimiser steps of the objective through the shared loop (`TrainingSteps`)."""
        from speat_metric.pruning.train import optimizer_for
        from speat_metric.training.checkpoints import TrainerState, resume_batches
        from speat_metric.training.loop import StepProgress, TrainingSteps

        steps = self.config.fine_tune_steps
        if steps == 0:
            return
        accelerator = self.accelerator
        accelerator.free_memory()  # new tensors after slicing: a new wrapper and optimiser (as speat prune does)
        model, optimizer, prepared = accelerator.prepare(objective.trainable,
                                                         optimizer_for(objective.trainable, self.config), loader)
        bar = StepProgress(steps, desc="fine-tuning", enabled=False)
        train_step = TrainingSteps(accelerator, bar, self.config.optimizer.gradient_clipping)
        state = TrainerState()
        model.train()
        while state.step < steps:
            for batch in resume_batches(prepared, state):
                train_step(model, optimizer, state, lambda batch=batch: (objective.loss(model, batch), {}))
                if state.step >= steps:
                    break
            else:
                state.epoch += 1
                state.batches_in_epoch = 0
        model.eval()
        bar.close()

    def measure(self, target: Any, method: str, fold_number: int, seed: int, step: int, fold: Mapping[str, Any],
                base: Mapping[str, Any], removal: Removal, done: Sequence[dict[str, Any]], quality: Mapping[str, Any],
                result: RunResult) -> Path:
        """Save the model as it is now, record every test's SpEAT on the held-out stimuli with its paired Δd
        against the unpruned model, and remove the checkpoint (the final one is copied first by the caller)."""
        from speat_metric.adapters.base import count_parameters

        directory = Path(self.config.out) / f"fold-{fold_number}" / f"seed-{seed}" / _slug(method)
        parameters = count_parameters(target.encoder)
        compression = {
            "method": method, "step": step, "fold": fold_number, "seed": seed, "removed": list(removal.removed),
            "removed_this_step": list(done), "objective": self.config.objective.name, "base_model": self.config.model,
            "parameters": parameters, "base_parameters": self.base_parameters,
            "parameters_removed": self.base_parameters - parameters,
            "heads_per_layer": [layer.num_heads for layer in target.layers()],
            "ffn_dims_per_layer": [layer.ffn_dim for layer in target.layers()],
            **quality, "quality_loss": quality_loss(quality["held_out_loss"], self.base_loss,
                                                    self.config.objective.name),
            "budget": self.config.budget, "config": self.config.to_dict()}
        path = target.checkpoint_path(directory, step)
        if self.accelerator.is_main_process:
            target.save(directory, step)
        tracker = self.tracker.on_stimuli(self.held_out_tests(fold), directory / "results")
        records = tracker.evaluate(target.checkpoint_spec(path), compression=compression,
                                   checkpoint={"name": path.name, "step": step})
        point = {"step": step, "parameters_removed": compression["parameters_removed"],
                 "held_out_loss": quality["held_out_loss"], "tests": {}}
        for record in with_paired_differences(records, base, resamples=self.config.resamples, seed=seed):
            if self.accelerator.is_main_process:
                record.save(tracker.results_dir)
            point["tests"][record.test] = {"d": record.speat.effect_size, **record.compression["paired_delta_d"]}
        result.points.append(point)
        self._forget_previous(directory, step, target)
        return path

    def _forget_previous(self, directory: Path, step: int, target: Any) -> None:
        """Keep only the latest checkpoint of a trajectory (the final model is copied from it)."""
        previous = target.checkpoint_path(directory, step - 1)
        if self.accelerator.is_main_process and previous.exists():
            shutil.rmtree(previous) if previous.is_dir() else previous.unlink()

    def leace(self, fold_number: int, fold: Mapping[str, Any], base: Mapping[str, Any]) -> list[RunResult]:
        """The LEACE control of one fold: the unpruned model with the selection X/Y direction erased from every
        layer's embeddings, measured on the held-out stimuli (no parameter removed, no seed)."""
        from speat_metric.adapters import load_encoder

        config = self.config
        encoder = load_encoder(config.model, revision=config.revision, mean_std_path=config.mean_std,
                               profile=config.tracking.profile)
        erased = ErasedEncoder.fitted(encoder, self.chosen_tests(fold))
        directory = Path(config.out) / f"fold-{fold_number}" / "leace"
        tracker = self.tracker.on_stimuli(self.held_out_tests(fold), directory / "results")
        method = CONTROL_PREFIX + "leace"
        records = tracker.evaluate(erased, compression={
            "method": method, "step": 1, "fold": fold_number, "seed": None, "removed": [], "parameters_removed": 0,
            "parameters": self.base_parameters, "base_parameters": self.base_parameters,
            "held_out_loss": self.base_loss, "quality_loss": 0.0, "config": config.to_dict()})
        point = {"step": 1, "parameters_removed": 0, "held_out_loss": self.base_loss, "tests": {}}
        for record in with_paired_differences(records, base, resamples=config.resamples, seed=0):
            if self.accelerator.is_main_process:
                record.save(tracker.results_dir)
            point["tests"][record.test] = {"d": record.speat.effect_size, **record.compression["paired_delta_d"]}
        # one result per seed slot, so that every method averages over the same folds x seeds grid
        return [RunResult(fold_number, seed, method, [point], "erasure, no pruning") for seed in config.seed_list]


def with_paired_differences(records: Sequence[Any], base: Mapping[str, Any], *, resamples: int,
                            seed: int) -> list[Any]:
    """Each record with ``compression["paired_delta_d"]``: Δd = d - d_unpruned on the same held-out stimuli, its
    bootstrap interval and the share of resamples where this model is less biased (`compare_records`)."""
    from speat_metric.comparison import compare_records

    out = []
    for record in records:
        comparison = compare_records(record, base[record.test], n_resamples=resamples, seed=seed)
        paired = {"difference": comparison.difference, "ci_low": comparison.ci_low, "ci_high": comparison.ci_high,
                  "unpruned_d": comparison.effect_sizes[1], "p_less_biased": comparison.p_first_less_biased,
                  "n_resamples": comparison.n_resamples, "sentence": comparison.sentence()}
        out.append(record.replace(compression={**record.compression, "paired_delta_d": paired}))
    return out


def _slug(method: str) -> str:
    return method.replace(CONTROL_PREFIX, "control-")


# ----------------------------------------------------------------------------------------------------------------
# LEACE: an adapter whose embeddings have the selection's X/Y direction erased


class ErasedEncoder(SpeechEncoder):
    """An adapter whose every layer's frames pass through a fitted LEACE eraser (`baselines.leace_erasure`). LEACE is
    affine, so erasing every frame and then mean-pooling equals erasing the pooled embedding it was fitted on."""

    def __init__(self, encoder: SpeechEncoder, erase: Callable[[int, np.ndarray], np.ndarray]) -> None:
        self.encoder, self.erase = encoder, erase
        self.description = dataclasses.replace(encoder.description, name=f"{encoder.description.name}+leace")
        self.profile = encoder.profile
        self.supports_padding = encoder.supports_padding

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        output = self.encoder.encode(waveforms)
        layers = []
        for number, states in enumerate(output.hidden_states):
            frames = states.reshape(-1, states.shape[-1]).double().cpu().numpy()
            layers.append(torch.from_numpy(self.erase(number, frames)).reshape(states.shape).to(states))
        return EncoderOutput(layers, output.frame_mask)

    @classmethod
    def fitted(cls, encoder: SpeechEncoder, selection: Mapping[str, Any]) -> ErasedEncoder:
        """Fit the erasers on every layer's pooled embeddings of the selection targets (X: 1, Y: 0) of the tests."""
        from speat_metric.embedding import clips_of, embed_stimuli
        from speat_metric.pruning.baselines import leace_erasure

        stimuli = [stimulus for test in selection.values() for role in "XY" for stimulus in test.of_role(role)]
        embeddings = embed_stimuli(encoder, clips_of(stimuli), progress=False)
        by_layer = np.stack([embeddings[stimulus.sha256] for stimulus in stimuli], axis=1)  # (layers, n, dim)
        labels = np.array([stimulus.role == "X" for stimulus in stimuli], dtype=int)
        return cls(encoder, leace_erasure(dict(enumerate(by_layer)), labels))


# ----------------------------------------------------------------------------------------------------------------
# Report, figure, table


def final_points(results: Sequence[RunResult], tests: Sequence[str]) -> dict[str, dict[tuple[int, int], dict]]:
    """Per method, per (fold, seed): the last step's mean held-out |d| over `tests`, its parameters removed and
    held-out loss (a run that took no step is absent)."""
    table: dict[str, dict[tuple[int, int], dict]] = {}
    for result in results:
        if not result.points:
            continue
        point = result.points[-1]
        table.setdefault(result.method, {})[(result.fold, result.seed)] = {
            "abs_d": float(np.mean([abs(point["tests"][test]["d"]) for test in tests])),
            "unpruned_abs_d": float(np.mean([abs(point["tests"][test]["unpruned_d"]) for test in tests])),
            "excludes_unpruned": all(point["tests"][test]["ci_high"] < 0 or point["tests"][test]["ci_low"] > 0
                                     for test in tests),
            "parameters_removed": point["parameters_removed"], "held_out_loss": point["held_out_loss"]}
    return table


def comparison_rows(results: Sequence[RunResult], tests: Sequence[str]) -> list[dict[str, Any]]:
    """Per control: the paired difference (control's |d| - debias's |d|, mean over chosen tests) over the folds x
    seeds both ran, as mean, min and max, and whether debias was lower in every one."""
    table = final_points(results, tests)
    ours = table.get(METHOD, {})
    rows = []
    for method, points in table.items():
        if method == METHOD:
            continue
        shared = sorted(set(points) & set(ours))
        gaps = [points[key]["abs_d"] - ours[key]["abs_d"] for key in shared]
        rows.append({"control": method.removeprefix(CONTROL_PREFIX), "replicates": len(gaps),
                     "mean": float(np.mean(gaps)) if gaps else float("nan"),
                     "min": float(np.min(gaps)) if gaps else float("nan"),
                     "max": float(np.max(gaps)) if gaps else float("nan"),
                     "beaten": bool(gaps) and min(gaps) > 0})
    return rows


def write_report(summary: DebiasSummary, config: DebiasConfig, run_dir: Path, *, chosen: Sequence[str]) -> Path:
    """``RUN/report.md``: on held-out speakers, whether debias beats each control and by how much (mean over folds x
    seeds with min-max), and the tracked tests (`chosen`: the reduced tests' names)."""
    from speat_metric.files import atomic_write_text
    from speat_metric.formatting import format_d

    tests = list(chosen)
    table = final_points(summary.results, tests)
    ours = table.get(METHOD, {})
    lines = [f"# Bias-aware pruning of {config.model}", "",
             f"Tests reduced: {', '.join(tests)}; tracked: {', '.join(config.track) or 'none'}. Every d below is "
             f"measured on held-out speakers only ({config.folds} speaker folds x {config.seeds} seeds); |d| is the "
             "mean over the reduced tests. This says how biased the model is on these tests and these held-out "
             "speakers, not that it is fair.", ""]
    if not ours:
        lines += ["Debias removed nothing within the quality budget in any fold: there is nothing to compare.", ""]
    else:
        values = [point["abs_d"] for point in ours.values()]
        unpruned = [point["unpruned_abs_d"] for point in ours.values()]
        excluded = sum(point["excludes_unpruned"] for point in ours.values())
        lines += [f"Debias: held-out |d| {format_d(float(np.mean(unpruned)))} unpruned -> "
                  f"{format_d(float(np.mean(values)))} (min {format_d(min(values))}, max {format_d(max(values))}); "
                  f"the paired 95% CI of Δd excludes 0 on every reduced test in {excluded} of {len(ours)} "
                  "fold x seed replicates.", ""]
        rows = comparison_rows(summary.results, tests)
        for row in rows:
            if row["replicates"] == 0:
                lines.append(f"- {row['control']}: no replicate to compare.")
            elif row["beaten"]:
                lines.append(f"- Debias beats {row['control']} on held-out speakers: its |d| is lower by "
                             f"{format_d(row['mean'])} on average (min {format_d(row['min'])}, max "
                             f"{format_d(row['max'])}) over {row['replicates']} fold x seed replicates.")
            else:
                lines.append(f"- Debias vs {row['control']}: it did not beat it on held-out speakers (|d| lower by "
                             f"{format_d(row['mean'])} on average, min {format_d(row['min'])}, max "
                             f"{format_d(row['max'])}, over {row['replicates']} fold x seed replicates).")
        verdict = ("Debias beats every control on held-out speakers." if rows and all(row["beaten"] for row in rows)
                   else "Debias did not beat every control on held-out speakers." if rows else
                   "No control was run (--no-controls).")
        lines += ["", verdict, ""]
    lines += ["| method | fold | seed | parameters removed | held-out loss | held-out mean |d| | stopped |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for result in summary.results:
        point = result.points[-1] if result.points else None
        value = (format_d(float(np.mean([abs(point["tests"][test]["d"]) for test in tests]))) if point else "-")
        lines.append(f"| {result.method} | {result.fold} | {result.seed} | "
                     f"{point['parameters_removed'] if point else 0} | "
                     f"{point['held_out_loss']:.4g} | {value} | {result.stopped} |" if point else
                     f"| {result.method} | {result.fold} | {result.seed} | 0 | - | - | {result.stopped} |")
    lines += ["", "Every test at debias's last step (held-out, paired against the unpruned model):"]
    for result in (result for result in summary.results if result.method == METHOD and result.points):
        for test, paired in result.points[-1]["tests"].items():
            role = "reduced" if test in tests else "tracked"
            lines.append(f"- fold {result.fold} seed {result.seed}, {role}: {paired['sentence']}")
    if summary.ablation:
        lines += ["", "Attribution of the unpruned model (selection speakers; maps and tables in "
                  "`fold-<f>/attribution.md` and `.png`), and whether its first step beats random removal of the same "
                  "size on held-out speakers:"]
        lines += [f"- fold {fold}: {sentence}" for fold, sentence in sorted(summary.ablation.items())]
    if summary.final:
        lines += ["", f"Final model (fold 0, seed {config.seed_list[0]}): `speat evaluate {summary.final}`."]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_pareto(results: Sequence[RunResult], run_dir: Path, *, tests: Sequence[str] | None = None) -> Path:
    """``RUN/pareto.png``: parameters removed (x) against held-out mean |d| (y), coloured by held-out loss, one
    marker per method, every step of every fold and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    markers = dict(zip([METHOD, *(CONTROL_PREFIX + name for name in CONTROLS)], "o^sDvP"))
    points = [(result.method, point) for result in results for point in result.points]
    losses = [point["held_out_loss"] for _, point in points] or [0.0]
    norm = matplotlib.colors.Normalize(vmin=min(losses), vmax=max(max(losses), min(losses) + 1e-12))
    for method in dict.fromkeys(method for method, _ in points):
        mine = [point for name, point in points if name == method]
        test_names = tests or list(mine[0]["tests"])
        axes.scatter([point["parameters_removed"] for point in mine],
                     [np.mean([abs(point["tests"][test]["d"]) for test in test_names]) for point in mine],
                     c=[point["held_out_loss"] for point in mine], cmap="viridis", norm=norm,
                     marker=markers.get(method, "x"), label=method.removeprefix(CONTROL_PREFIX), edgecolors="black")
    axes.set_xlabel("parameters removed")
    axes.set_ylabel("held-out |d| (mean over tests)")
    axes.legend(fontsize="small")
    figure.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="held-out loss")
    figure.tight_layout()
    path = run_dir / "pareto.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_summary_csv(results: Sequence[RunResult], run_dir: Path) -> Path:
    """``RUN/summary.csv``: one row per method, fold, seed, step and test."""
    path = run_dir / "summary.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "fold", "seed", "step", "parameters_removed", "held_out_loss", "test", "d",
                         "delta_d", "ci_low", "ci_high"])
        for result in results:
            for point in result.points:
                for test, values in point["tests"].items():
                    writer.writerow([result.method, result.fold, result.seed, point["step"],
                                     point["parameters_removed"], point["held_out_loss"], test, values["d"],
                                     values["difference"], values["ci_low"], values["ci_high"]])
    return path
