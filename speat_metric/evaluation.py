"""Evaluate model strings into `EvaluationRecord`s, with every input checked before the first forward pass.

What ``speat evaluate``, the Hub annotation, the webhook worker, the Space and the compression sweeps run:
`EvaluationSettings` holds the options (the command line's names and defaults); `evaluate_models` checks everything,
then loads and evaluates one model at a time, writing each model's records as soon as they are complete.

Example:
    >>> settings = EvaluationSettings(tests=("gender",), num_permutations=1000, progress=False)
    >>> records = evaluate_models(["mfcc"], settings)          # doctest: +SKIP
    >>> records[0].speat.effect_size                            # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speat_metric.defaults import BATCH_SECONDS, DTYPES, NUM_PERMUTATIONS, PROFILE, STUDY_TESTS
from speat_metric.files import check_writable_directory
from speat_metric.pooling import FRAME_POOLINGS, LayerPooling
from speat_metric.progress import silence_library_progress_bars

if TYPE_CHECKING:
    from speat_metric.adapters.preflight import ModelCheck
    from speat_metric.results import EvaluationRecord
    from speat_metric.stimuli.fingerprints import BenchmarkReference
    from speat_metric.stimuli.loaders import StimulusSet

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class EvaluationSettings:
    """How to evaluate: the options of ``speat evaluate`` with its defaults (``speat evaluate --help`` says what each
    does). The names are the options' (``num_permutations`` is ``--permutations``, ``layer_pooling`` is ``--pooling``
    with ``--layer``; ``use_cache`` and ``progress`` are the opposites of ``--no-cache`` and ``--no-progress``);
    ``stimulus_cache_dir`` is where ``stimuli="speat"`` downloads to (None: the default location). Every value is
    checked here, before any work.
    """

    tests: tuple[str, ...] = STUDY_TESTS
    stimuli: str = "demo"
    allow_missing: bool = False
    layer_pooling: LayerPooling = field(default_factory=LayerPooling)
    frame_pooling: str = "mean"
    num_permutations: int = NUM_PERMUTATIONS
    seed: int = 0
    revision: str | None = None
    device: str | None = None
    dtype: str = DTYPES[0]
    batch_seconds: float = BATCH_SECONDS
    trim_silence: bool = False
    mean_std: str | None = None
    cache_dir: Path | None = None
    use_cache: bool = True
    progress: bool = True
    stimulus_cache_dir: Path | None = None
    profile: str = PROFILE
    cmvn: bool = False
    benchmark: str | None = None
    corpora: tuple[tuple[str, str], ...] = ()
    """``--corpus NAME=DIR``: the folders of the user's copies of corpora speat cannot download."""

    def __post_init__(self) -> None:
        if isinstance(self.tests, str):
            object.__setattr__(self, "tests", tuple(t.strip() for t in self.tests.split(",") if t.strip()))
        if not self.tests:
            raise ValueError("no tests given; use gender, age, native or the path of a custom test JSON file")
        check_permutations_and_seed(self.num_permutations, self.seed)
        if not self.batch_seconds > 0:
            raise ValueError(f"--batch-seconds must be positive, got {self.batch_seconds!r}")
        if self.frame_pooling not in FRAME_POOLINGS:
            raise ValueError(f"--frame-pooling must be one of {', '.join(FRAME_POOLINGS)}, got {self.frame_pooling!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.mean_std is not None and not Path(self.mean_std).is_file():
            raise FileNotFoundError(f"--mean-std file {self.mean_std!r} does not exist")
        from speat_metric.profiles import get_profile
        from speat_metric.stimuli.fingerprints import benchmark_from_environment

        get_profile(self.profile)
        if self.benchmark is not None:
            benchmark_from_environment(self.benchmark)  # the format; the Hub is asked when the work starts

    @property
    def embedding_cache(self) -> Path | None:
        """The embedding cache directory, or None when caching is off."""
        if not self.use_cache:
            return None
        from speat_metric.cache import default_cache_root

        return self.cache_dir or default_cache_root()


def check_permutations_and_seed(num_permutations: int, seed: int) -> None:
    """The ``--permutations`` and ``--seed`` of any command, checked before any work (named as the user typed them).

    Example:
        >>> check_permutations_and_seed(1000, 0)
    """
    if not isinstance(num_permutations, int) or num_permutations < 1:
        raise ValueError(f"--permutations must be a whole number of at least 1, got {num_permutations!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed must be a non-negative whole number, got {seed!r}")


@dataclass(frozen=True)
class ModelRun:
    """One model to load and evaluate: a model string (one checkpoint of a series, or the model itself)."""

    model: str
    check: ModelCheck
    checkpoint: dict[str, Any] | None = None


def resolve_device(device: str | None) -> str:
    """The torch device to run on; a device that does not exist here is a ValueError saying which ones do.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    import torch

    from speat_metric.distributed import default_device

    if device is None:
        return default_device()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device!r}: CUDA is not available on this machine (torch "
                             f"{torch.__version__}); use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device!r}: Apple MPS is not available on this machine; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return device


def plan_models(models: Sequence[str], revision: str | None = None) -> list[ModelRun]:
    """Check every model string once (see `speat_metric.adapters.preflight`), expanding directories of checkpoints;
    the first string that cannot be loaded is a ModelLoadError, before anything is loaded."""
    from speat_metric.adapters import checkpoint_series
    from speat_metric.adapters.preflight import check_model

    runs = []
    for model in models:
        check = check_model(model, revision=revision)
        series = checkpoint_series(check.spec) if check.kind in ("checkpoints", "melhubert", "m2d") else None
        if series:
            runs += [ModelRun(member, check_model(member), checkpoint) for member, checkpoint in series]
        else:
            runs.append(ModelRun(model, check))
    return runs


def load_tests(settings: EvaluationSettings) -> dict[str, StimulusSet]:
    """The stimuli of every test in `settings`, by test name (found and checked, nothing embedded)."""
    from speat_metric.stimuli import load_custom_test, load_speat_test

    tests = {}
    for entry in settings.tests:
        spec = load_custom_test(Path(entry)) if entry.endswith(".json") else entry
        test = load_speat_test(spec, source=settings.stimuli, allow_missing=settings.allow_missing,
                               cache_dir=settings.stimulus_cache_dir, progress=settings.progress,
                               profile=settings.profile, corpora=dict(settings.corpora))
        if test.name in tests:
            raise ValueError(f"test {test.name!r} is given twice in --tests")
        tests[test.name] = test
    return tests


def warn_differing_stimuli(tests: dict[str, StimulusSet], reference: BenchmarkReference) -> None:
    """One warning per test whose audio differs from the benchmark's, naming the clips."""
    from speat_metric.stimuli.errors import shown_ids

    for name, test in tests.items():
        differing = reference.differing(test)
        if differing:
            logger.warning("test %s: %d clip(s) differ from the audio of the benchmark %s (%s); its results are "
                           "labelled stimuli-differ", name, len(differing), reference.benchmark, shown_ids(differing))


def evaluate_models(
    models: Sequence[str],
    settings: EvaluationSettings,
    *,
    out: Path | None = None,
    on_model: Callable[[ModelRun, list[EvaluationRecord]], None] | None = None,
) -> list[EvaluationRecord]:
    """Check the device, `out`, every model string, test and stimulus (a ValueError before the first model is
    loaded), then evaluate each model on every test; returns every record, in model order, then test order.

    A directory of checkpoints gives one run per checkpoint, in step order. Each model's records are written to `out`
    (one JSON file each) as soon as the model completes, then passed to `on_model` with its run.
    """
    from speat_metric.adapters import load_encoder
    from speat_metric.distributed import is_main_process
    from speat_metric.pipeline import evaluate_tests
    from speat_metric.profiles import check_profile_model_type
    from speat_metric.stimuli.fingerprints import load_reference

    device = resolve_device(settings.device)
    if out is not None:
        check_writable_directory(out, "--out", "the results")
    if settings.embedding_cache is not None:
        check_writable_directory(settings.embedding_cache, "--cache-dir" if settings.cache_dir else
                                 "the embedding cache ($SPEAT_CACHE/embeddings)", "the embedding cache")
    runs = plan_models(models, settings.revision)
    for run in runs:
        check_profile_model_type(settings.profile, run.check.model_type, run.model)
        if run.check.num_layers is not None:
            settings.layer_pooling.layer_index(run.check.num_layers, run.model)
    reference = load_reference(settings.benchmark) if settings.benchmark else None
    tests = load_tests(settings)
    if reference is not None:
        warn_differing_stimuli(tests, reference)
    silence_library_progress_bars(downloads=settings.progress)
    records: list[EvaluationRecord] = []
    for run in runs:
        encoder = load_encoder(run.check, revision=settings.revision, device=device, dtype=settings.dtype,
                               mean_std_path=settings.mean_std, profile=settings.profile, cmvn=settings.cmvn)
        settings.layer_pooling.layer_index(encoder.description.num_layers, run.model)  # before the first forward
        model_records = evaluate_tests(
            encoder, tests, layer_pooling=settings.layer_pooling, frame_pooling=settings.frame_pooling,
            cache_dir=settings.embedding_cache, batch_seconds=settings.batch_seconds,
            trim_silence=settings.trim_silence, num_permutations=settings.num_permutations, seed=settings.seed,
            labels=run.check.spec.labels, checkpoint=run.checkpoint, progress=settings.progress,
            reference=reference,
        )
        if out is not None and is_main_process():
            for record in model_records:
                record.save(out)
        if on_model is not None:
            on_model(run, model_records)
        records.extend(model_records)
    return records

