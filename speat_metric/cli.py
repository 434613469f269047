"""The ``speat`` command line.

    speat evaluate [MODEL ...]   # the bias table of speech models (default: offline baselines on the demo set)
    speat --version
    speat register     # let evaluate.load("speat") work offline from any directory
    speat example      # SpEAT through the evaluate module on the bundled (synthetic) example embeddings
    speat stimuli list|download   # the SpEAT tests and their sizes; fetch the real stimuli into the cache
    speat compare RESULTS ...     # models on the same stimuli: Δd with a paired CI; rank intervals and tiers
    speat explain RESULTS ...     # what drives each d: single-concept associations, leave-one-speaker-out
    speat tests build|interaction ...   # a SpEAT test from any corpus with speaker metadata; intersectional designs
    speat hub|prune|distill|space ...   # the Hub, pruning and distillation with bias tracking, the Gradio Space

The commands above `speat hub` are the core's own; the others are found through the ``speat.commands`` entry points
(`COMMAND_GROUP`) and imported only when they run: ``speat evaluate`` loads none of the Hub, training or Space code.

Details (every command, adding a command): README.md, "Command line".
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from speat_metric import __version__, compare_cli, tests_cli
from speat_metric.defaults import BATCH_SECONDS, DTYPES, NUM_PERMUTATIONS, PROFILE, STUDY_TESTS
from speat_metric.extras import MissingExtraError
from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_NOTE,
    excludes_zero,
    format_ci,
    format_d,
    format_p_statement,
    format_size,
)
from speat_metric.pooling import FRAME_POOLINGS, LAYER_POOLINGS, LayerPooling
from speat_metric.profiles import PROFILE_NAMES
from speat_metric.report import FORMATS

if TYPE_CHECKING:
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.stimuli import SpeatTestSpec

EXAMPLE_EMBEDDINGS = Path(__file__).parent / "data" / "example_embeddings.npz"

COMMAND_GROUP = "speat.commands"
"""Entry-point group of the commands that live outside the core (``hub``, ``prune``, ``distill``, ``space``, and any
third party's); ``python -m speat_metric.hub`` and the like run the same commands."""
CORE_COMMANDS = ("register", "example", "evaluate", "stimuli", "compare", "explain", "tests")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``speat`` console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_name(argv)
    parser = build_parser(command, plug_ins=command is not None or "--version" not in argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser (its usage), with the option meant when it is a near miss
        command_parser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}{_did_you_mean(unknown, command_parser)}")
    _configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return 0
    said = getattr(args, "command_parser", parser).prog  # "speat hub annotate": the command as typed
    try:
        return args.handler(args)
    except BrokenPipeError:  # `speat ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that exiting flushes nowhere, silently
        return 141
    except (ValueError, OSError, MissingExtraError) as error:  # a file, a download, a model that cannot be read
        _close_progress_bars()
        print(f"{said}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what happened and how to go on, not a traceback
        _close_progress_bars()
        hint = getattr(args, "interrupted_hint", None)
        print(f"{said}: interrupted{f'; {hint}' if hint else ''}", file=sys.stderr)
        return 130


def _close_progress_bars() -> None:
    """End the bars an error or Ctrl-C left open, so that the message that follows has a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def _did_you_mean(unknown: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """`` (did you mean --tests, --permutations?)``: the parser's options closest to the unknown ones, or how to give
    several tests; nothing when no hint fits."""
    import difflib

    options = [option for option in parser._option_string_actions if option.startswith("--")]
    close = [match for word in unknown if word.startswith("--")
             for match in difflib.get_close_matches(word.split("=", 1)[0], options, n=1, cutoff=0.6)]
    if close:
        return f" (did you mean {', '.join(dict.fromkeys(close))}?)"
    tests = [word for word in unknown if word in STUDY_TESTS or word.endswith(".json")]
    if tests and "--tests" in options:  # `--tests gender age`: the second test is left over
        return f" (--tests takes one comma-separated list, e.g. --tests gender,{tests[0]})"
    return ""


def _every_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """A parser and all its subcommands' parsers, depth first (each once, aliases or not)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in dict.fromkeys(action.choices.values()):
                yield from _every_parser(subparser)


def _finish_parsers(parser: argparse.ArgumentParser) -> None:
    """What every ``speat`` parser, plug-ins' included, does alike: no abbreviated options (a typo must not become
    another option), ``-v`` after the command as before it, and each command knows its parser (for its errors)."""
    for each in _every_parser(parser):
        each.allow_abbrev = False
        if each is parser:
            continue
        if "-v" not in each._option_string_actions:
            each.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                              help="log progress details")
        each.set_defaults(command_parser=each)


def _configure_logging(verbose: bool) -> None:
    """Warnings from everything; with -v, also the progress details of our own package (not every library's)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("speat_metric").setLevel(logging.INFO if verbose else logging.WARNING)
    # huggingface_hub prints through its own handler; propagating as well would print each line twice
    logging.getLogger("huggingface_hub").propagate = False


def command_name(argv: Sequence[str]) -> str | None:
    """The command an argument list asks for: its first word that is not an option (``speat``'s own options take
    no value), or None.

    Example:
        >>> command_name(["-v", "evaluate", "--help"]), command_name(["--version"])
        ('evaluate', None)
    """
    return next((word for word in argv if not word.startswith("-")), None)


def command_entry_points() -> dict[str, EntryPoint]:
    """The installed commands of the ``speat.commands`` group, by name (the first installed wins a name)."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=COMMAND_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def build_parser(command: str | None = None, *, plug_ins: bool = True) -> argparse.ArgumentParser:
    """The ``speat`` parser. With `command` a core command, no entry point is loaded; with another name, only that
    command's; with None or a name nobody provides, every installed command (to list them, or to say which exist).
    `plug_ins` False loads none (``speat --version``).
    """
    parser = argparse.ArgumentParser(
        prog="speat",
        allow_abbrev=False,
        description="Measure social bias in self-supervised speech models with the Speech Embedding Association "
        "Test (SpEAT).",
    )
    parser.add_argument("--version", action="version", version=f"speat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", title="commands")

    register = commands.add_parser(
        "register",
        help='make evaluate.load("speat") work offline from any directory',
        description='Install a shim in the Hugging Face evaluate modules cache so that evaluate.load("speat") '
        "finds the measurement installed with this package, offline and from any working directory.",
    )
    register.add_argument("--modules-cache", type=Path, default=None,
                          help="modules cache to register in (default: evaluate's, i.e. $HF_MODULES_CACHE)")
    register.set_defaults(handler=_register)

    example = commands.add_parser(
        "example",
        help="run SpEAT through the evaluate module on the bundled synthetic example embeddings",
        description="A worked example of the statistics: loads the bundled synthetic embeddings (not a "
        "measurement of any model), runs evaluate.load('speat') on them and prints the result.",
    )
    example.add_argument("--permutations", type=int, default=100_000, help="permutation budget (default 100000)")
    example.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    example.set_defaults(handler=_example)
    _add_evaluate_parser(commands)
    _add_stimuli_parser(commands)
    compare_cli.add_parsers(commands)
    tests_cli.add_parsers(commands)
    if plug_ins and command not in CORE_COMMANDS:
        installed = command_entry_points()
        for name, entry_point in installed.items():
            if command in installed and name != command:
                continue
            if name in CORE_COMMANDS:
                raise RuntimeError(f"the entry point {entry_point.value!r} ({COMMAND_GROUP}) takes the name of the "
                                   f"core command {name!r}")
            entry_point.load()(commands)
    _finish_parsers(parser)
    return parser


def run_package_command(command: str, argv: Sequence[str] | None = None) -> int:
    """``python -m PACKAGE ARGS`` is ``speat COMMAND ARGS``: one parser, one set of error messages."""
    return main([command, *(sys.argv[1:] if argv is None else argv)])


def _register(args: argparse.Namespace) -> int:
    from speat_metric.evaluate_registration import register_evaluate_module

    path = register_evaluate_module(args.modules_cache)
    print(f'registered: evaluate.load("speat") now resolves to {path}')
    return 0


def _example(args: argparse.Namespace) -> int:
    from speat_metric.evaluation import check_permutations_and_seed

    check_permutations_and_seed(args.permutations, args.seed)
    import evaluate
    import numpy as np

    from speat_metric.evaluate_registration import MODULE_PATH

    with np.load(EXAMPLE_EMBEDDINGS) as groups:
        embeddings = [vector for role in "XYAB" for vector in groups[role].tolist()]
        roles = [role for role in "XYAB" for _ in range(len(groups[role]))]
    speat = evaluate.load(str(MODULE_PATH), keep_in_memory=True)  # nothing left in evaluate's cache
    result = speat.compute(embeddings=embeddings, groups=roles, num_permutations=args.permutations, seed=args.seed)
    print("SpEAT on the bundled SYNTHETIC example embeddings (a worked example, not a bias measurement)")
    print(f"  targets X/Y: {result['n_x']}/{result['n_y']}   attributes A/B: {result['n_a']}/{result['n_b']}")
    size = format_size(result["effect_size_label"], result["ci_low"], result["ci_high"])
    print(f"  effect size d = {format_d(result['effect_size'])} ({size}), "
          f"{result['confidence']:.0%} CI {format_ci(result['ci_low'], result['ci_high'])}")
    kind = "exact" if result["exact"] else f"{result['num_permutations']:,} random partitions"
    p_value = format_p_statement(result["p_value"], exact=result["exact"], num_permutations=result["num_permutations"])
    print(f"  {p_value} ({result['alternative']}, {kind}, seed {result['seed']})")
    if excludes_zero(result["ci_low"], result["ci_high"]):
        print(f"  {CI_EXCLUDES_ZERO_NOTE}")
    return 0


DEFAULT_MODELS = ("stft", "spectrogram", "mel_spectrogram", "mfcc", "random:melhubert-small")


def _add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="SpEAT bias table of speech models (default: offline, on the synthetic demo set)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Embed the stimuli of each test with each model (mean over time per layer, then over layers), run the "
            "SpEAT, print a table and write one JSON record per model and test to --out.\n\n"
        "MODEL is a Hugging Face Hub id (facebook/hubert-base-ls960) or local directory of a transformers speech "
        "encoder (wav2vec2, HuBERT, DistilHuBERT, WavLM, data2vec-audio, Whisper), a directory of such checkpoints "
        "(one result per checkpoint, in step order), melhubert:CHECKPOINT, m2d:CHECKPOINT, a directory of those "
        "(melhubert:DIR), random:melhubert-small|slim|base[@SEED] (a randomly initialised model, the study's step "
        "0), or a classical feature: stft, spectrogram, mel_spectrogram, mfcc.\n\n"
        "With no MODEL: the four classical features and a random-init MelHuBERT small, on --stimuli demo, which "
        "runs offline. The demo stimuli are synthetic: a pipeline check, not a bias measurement.\n\n"
        "Several processes: accelerate launch --multi_gpu --num_processes N -m speat_metric.cli evaluate ... "
        "splits the stimuli across processes (works on CPUs too)."),
    )
    evaluate.add_argument("models", nargs="*", metavar="MODEL", help="models to evaluate (see above)")
    evaluate.add_argument("--tests", default=",".join(STUDY_TESTS),
                          help="comma-separated tests: gender, age, native, another published test (speat "
                          "stimuli list), or the path of a JSON file defining a custom test {name, x, y, a, b: [audio "
                          "paths], group_names?, pairs?} (speat tests build makes one) "
                          f"(default {','.join(STUDY_TESTS)})")
    evaluate.add_argument("--stimuli", default="demo",
                          help="where the audio comes from: demo (embedded, synthetic), speat (download the study's "
                          "stimuli into the cache), a local directory, or a Hub dataset owner/name[@revision] "
                          "(default demo)")
    evaluate.add_argument("--corpus", action="append", default=[], metavar="NAME=DIR",
                          help="the folder of your copy of a corpus a published test needs and speat cannot "
                          "download, e.g. --corpus uaspeech=~/UASpeech (repeatable; else $SPEAT_CORPUS_<NAME>, else "
                          "<--stimuli DIR>/<name>/; names and layouts: speat stimuli list, docs/stimuli.md)")
    evaluate.add_argument("--allow-missing", action="store_true",
                          help="go on without missing or unreadable (empty, truncated) stimuli: they are dropped "
                          "and recorded in every result")
    evaluate.add_argument("--pooling", default="mean", choices=LAYER_POOLINGS,
                          help="layers: mean over all layers (default, as in the studies), the last layer, one "
                          "--layer, or per-layer (one result per layer)")
    evaluate.add_argument("--layer", type=int, default=None,
                          help="the layer for --pooling layer (0 = input embedding layer; negative counts from "
                          "the end)")
    evaluate.add_argument("--frame-pooling", default="mean", choices=FRAME_POOLINGS,
                          help="pooling over a clip's frames in each layer (default mean)")
    evaluate.add_argument("--permutations", type=int, default=NUM_PERMUTATIONS,
                          help=f"permutation budget; every partition when there are fewer (default {NUM_PERMUTATIONS})")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of permutations and bootstrap (default 0)")
    evaluate.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of the models")
    evaluate.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    evaluate.add_argument("--dtype", default=DTYPES[0], choices=DTYPES,
                          help="model weights and activations (default float32)")
    evaluate.add_argument("--batch-seconds", type=float, default=BATCH_SECONDS,
                          help=f"padded audio per batch, in seconds (default {BATCH_SECONDS:g})")
    evaluate.add_argument("--trim-silence", action="store_true",
                          help="trim leading and trailing silence (the studies did not)")
    evaluate.add_argument("--mean-std", default=None,
                          help="MelHuBERT: the authors' mean/std .npy used to normalise the filter banks (without it "
                          "records are labelled unnormalised-input)")
    evaluate.add_argument("--profile", default=PROFILE, choices=PROFILE_NAMES,
                          help="extraction profile: hf (transformers hidden_states, soxr resampling; default), "
                          "speat2023 (the SpEAT reference code, for Slaughter et al. 2023's numbers) or s3prl (S3PRL "
                          "upstream hooks, for Lin et al. 2024's); see docs/reproducibility.md")
    evaluate.add_argument("--cmvn", action="store_true",
                          help="classical features: per-clip CMVN as in S3PRL's configs (time-averaged features are "
                          "then rounding residue; without it records are labelled not-table3-comparable)")
    evaluate.add_argument("--benchmark", default=None, metavar="OWNER/NAME",
                          help="the SpEAT benchmark on the Hub (default $SPEAT_BENCHMARK): compare the audio with "
                          "its record (differing clips are named and their results labelled stimuli-differ); the "
                          "Hub commands attach .eval_results to it")
    evaluate.add_argument("--out", type=Path, default=Path("results"),
                          help="directory of the JSON results, one file per model and test (default ./results)")
    evaluate.add_argument("--format", default="table", choices=FORMATS, help="output format (default table)")
    evaluate.add_argument("--cache-dir", type=Path, default=None,
                          help="embedding cache (default $SPEAT_CACHE/embeddings, else $HF_HOME/speat/embeddings)")
    evaluate.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    evaluate.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    evaluate.set_defaults(handler=_evaluate, interrupted_hint="the models finished before it have their records in "
                          "--out; run the command again to finish (their embeddings come from the cache)")


def _paragraphs(text: str, width: int = 100) -> str:
    """Wrap each blank-line-separated paragraph of a help text (RawDescriptionHelpFormatter keeps the breaks)."""
    import textwrap

    return "\n\n".join(textwrap.fill(paragraph, width) for paragraph in text.split("\n\n"))


def evaluation_options() -> argparse.ArgumentParser:
    """``speat evaluate``'s evaluation options (all but MODEL, --out and --format) as a parent parser, so that other
    commands that evaluate (``speat hub annotate --evaluate``) take the same options, declared once (above).

    Example:
        >>> parser = argparse.ArgumentParser(parents=[evaluation_options()])
        >>> evaluation_settings(parser.parse_args(["--tests", "age", "--permutations", "500"])).num_permutations
        500
    """
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    _add_evaluate_parser(scratch)
    parent = argparse.ArgumentParser(add_help=False)
    for action in scratch.choices["evaluate"]._actions:
        if action.dest not in ("help", "models", "out", "format"):
            parent._add_action(action)
    return parent


def evaluation_settings(args: argparse.Namespace) -> EvaluationSettings:
    """The `EvaluationSettings` of parsed ``speat evaluate`` options (see `evaluation_options`)."""
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.stimuli.fingerprints import benchmark_from_environment

    return EvaluationSettings(
        tests=args.tests, stimuli=args.stimuli, allow_missing=args.allow_missing,
        layer_pooling=LayerPooling(args.pooling, args.layer), frame_pooling=args.frame_pooling,
        num_permutations=args.permutations, seed=args.seed, revision=args.revision, device=args.device,
        dtype=args.dtype, batch_seconds=args.batch_seconds, trim_silence=args.trim_silence, mean_std=args.mean_std,
        cache_dir=args.cache_dir, use_cache=not args.no_cache, progress=not args.no_progress,
        profile=args.profile, cmvn=args.cmvn, benchmark=benchmark_from_environment(args.benchmark),
        corpora=tuple(corpus_option(value) for value in args.corpus),
    )


def corpus_option(value: str) -> tuple[str, str]:
    """``--corpus NAME=DIR`` as (name, folder); a malformed value or an unknown corpus is a one-line error.

    Example:
        >>> corpus_option("uaspeech=copies/UASpeech")
        ('uaspeech', 'copies/UASpeech')
    """
    from speat_metric.stimuli.battery import CORPORA

    name, separator, folder = value.partition("=")
    if not separator or not name or not folder:
        raise ValueError(f"--corpus {value!r}: write NAME=DIR, e.g. --corpus uaspeech=~/UASpeech")
    if name not in CORPORA:
        raise ValueError(f"--corpus {value!r}: unknown corpus {name!r}; the corpora are {', '.join(sorted(CORPORA))}")
    return name, folder


def _evaluate(args: argparse.Namespace) -> int:
    from speat_metric.distributed import is_main_process
    from speat_metric.evaluation import evaluate_models
    from speat_metric.report import format_records, plural

    settings = evaluation_settings(args)
    records = evaluate_models(args.models or DEFAULT_MODELS, settings, out=args.out)
    if is_main_process():
        print(format_records(records, args.format))  # stdout holds the format asked for, so that it can be redirected
        print(f"{plural(len(records), 'result')} written to {args.out}/", file=sys.stderr)
    return 0


def _add_stimuli_parser(commands: argparse._SubParsersAction) -> None:
    stimuli = commands.add_parser(
        "stimuli",
        help="list the SpEAT tests and their stimuli, or download the stimuli",
        description="The SpEAT tests (gender, age, native) use Speech Accent Archive recordings as targets and Morgan "
        "Emotional Speech Set clips as attributes, as selected by Slaughter et al. (2023).",
    )
    stimuli.set_defaults(handler=lambda args: stimuli.print_help() or 0)
    stimuli_commands = stimuli.add_subparsers(dest="stimuli_command", title="stimuli commands")

    listing = stimuli_commands.add_parser(
        "list", help="show the tests with their group names, sizes and where their audio is",
        description="Show the 12 published SpEAT tests (Slaughter et al. 2023, T1-T12; gender, native and age are "
        "T6, T8 and T10) with their X/Y target and A/B attribute groups, pairs and whether their audio is available "
        "here, and the embedded synthetic demo set (a pipeline check, not a bias measurement).")
    listing.add_argument("--stimuli", type=Path, default=None, metavar="DIR",
                         help="a folder holding copies of corpora as <DIR>/<corpus>/ (e.g. DIR/uaspeech/); "
                         "$SPEAT_CORPUS_<NAME> names one corpus's folder")
    listing.add_argument("--cache-dir", type=Path, default=None, help="stimulus cache directory")
    listing.set_defaults(handler=_stimuli_list)

    download = stimuli_commands.add_parser(
        "download", help="fetch the real stimuli into the stimulus cache",
        description="Download the recordings of the chosen tests from the Speech Accent Archive (accent.gmu.edu) "
        "and the Morgan Emotional Speech Set (Zenodo) into the stimulus cache ($SPEAT_CACHE/stimuli, else "
        "$HF_HOME/speat/stimuli), with retries and resume; files already cached are not requested again. Prints what "
        "the cache holds and what is missing; exits with 1 when something is missing.")
    download.add_argument("--tests", default=",".join(STUDY_TESTS),
                          help=f"comma-separated tests to fetch (default {','.join(STUDY_TESTS)})")
    download.add_argument("--cache-dir", type=Path, default=None, help="stimulus cache directory")
    download.add_argument("--base-url-saa", default=None,
                          help="where <name>.mp3 lives (default $SPEAT_SAA_BASE_URL or "
                          "https://accent.gmu.edu/soundtracks)")
    download.add_argument("--base-url-zenodo", default=None,
                          help="Zenodo server (default $SPEAT_ZENODO_BASE_URL or https://zenodo.org)")
    download.add_argument("--retries", type=int, default=5, help="attempts per file before giving up (default 5)")
    download.add_argument("--benchmark", default=None, metavar="OWNER/NAME",
                          help="the SpEAT benchmark on the Hub (default $SPEAT_BENCHMARK): name every clip whose "
                          "bytes differ from its record")
    download.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    download.set_defaults(handler=_stimuli_download,
                          interrupted_hint="run it again: files already in the cache are not fetched again")


def _group_line(spec: SpeatTestSpec) -> str:
    groups = "   ".join(f"{group.role} {group.name} ({len(group)})" for group in spec.groups)
    return f"{groups}   pairs: {len(spec.pairs) or 'none'}"


def _stimuli_list(args: argparse.Namespace) -> int:
    from speat_metric.stimuli import demo_available, demo_speat_test, speat_tests
    from speat_metric.stimuli.battery import BATTERY, audio_status, published_tests

    print("Published SpEAT tests (Slaughter et al. 2023, T1-T12); run one with speat evaluate --tests ID")
    specs = published_tests()
    for test in BATTERY:
        original = "  (speat's original test)" if test.test_id in speat_tests() else ""
        print(f"  {test.label:<4} {test.test_id:<22} {_group_line(specs[test.test_id])}{original}")
        print(f"       audio: {audio_status(test.test_id, stimuli_dir=args.stimuli, cache_dir=args.cache_dir)}")
    sources = next(iter(speat_tests().values())).citations
    print("  selections and corpora: " + "; ".join(citation.text.split(". ")[0] for citation in sources))
    if demo_available():
        print("demo set: SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT (synthesised speech, works offline)")
        for name in speat_tests():
            print(f"  {name:<7} {_group_line(demo_speat_test(name))}")
    else:
        print("demo set: not installed")
    return 0


def _stimuli_download(args: argparse.Namespace) -> int:
    from speat_metric.files import check_writable_directory
    from speat_metric.stimuli import DownloadSource, RetryPolicy, get_speat_test, stimulus_refs
    from speat_metric.stimuli.download import file_sha256
    from speat_metric.stimuli.errors import shown_ids
    from speat_metric.stimuli.fingerprints import benchmark_from_environment, load_reference
    from speat_metric.stimuli.public import saa_base_url, zenodo_base_url

    specs = [get_speat_test(name.strip()) for name in args.tests.split(",") if name.strip()]
    if args.retries < 1:
        raise ValueError(f"--retries must be at least 1 (the first attempt counts), got {args.retries}")
    if args.cache_dir is not None:
        check_writable_directory(args.cache_dir, "--cache-dir", "the stimulus cache")
    saa_base_url(args.base_url_saa)  # a malformed URL stops here, before any download
    zenodo_base_url(args.base_url_zenodo)
    benchmark = benchmark_from_environment(args.benchmark)
    reference = load_reference(benchmark) if benchmark else None  # before any download: a bad name stops here
    refs = [ref for ref in {ref.stimulus_id: ref for spec in specs for ref in stimulus_refs(spec)}.values()
            if ref.corpus in ("saa", "mess")]  # the other corpora: the lines printed below
    unavailable = _other_corpora_lines(specs)
    source = DownloadSource(cache_dir=args.cache_dir, saa_base_url=args.base_url_saa,
                            zenodo_base_url=args.base_url_zenodo, retry=RetryPolicy(attempts=args.retries),
                            keep_going=True)
    resolution = source.resolve(refs, progress=not args.no_progress)
    fetched = _fetch_other_corpora(specs, source, progress=not args.no_progress)
    print(f"stimulus cache: {source.cache_dir}")
    for spec in specs:
        counts = "   ".join(f"{group.role} {group.name} "
                           f"{sum(s in resolution.files or s in fetched for s in group.stimulus_ids)}"
                           f"/{len(group)}" for group in spec.groups)
        print(f"  {spec.name:<7} {counts}")
    if reference is not None:
        differing = reference.differing({"stimulus_id": stimulus_id, "sha256": file_sha256(path)}
                                        for stimulus_id, path in resolution.files.items())
        if differing:
            print(f"{len(differing)} clip(s) differ from the audio of the benchmark {benchmark}: "
                  f"{shown_ids(differing)}; results made from them are labelled stimuli-differ")
        else:
            print(f"every clip in the cache has the bytes the benchmark {benchmark} lists")
    for line in unavailable:
        print(line)
    if not resolution.missing:
        print(f"all {len(refs)} stimuli are in the cache")
        return 1 if unavailable else 0
    print(f"missing {len(resolution.missing)} of {len(refs)} stimuli:")
    for reason in dict.fromkeys(resolution.missing.values()):
        ids = [stimulus_id for stimulus_id, why in resolution.missing.items() if why == reason]
        print(f"  {reason}: {shown_ids(ids)}")
    print("to go on without them, add --allow-missing to speat evaluate (they are recorded in every result); or "
          "provide them from a local copy (--stimuli DIR) or a Hub dataset (--stimuli OWNER/NAME)")
    return 1


def _other_corpora_lines(specs: Sequence[SpeatTestSpec]) -> list[str]:
    """One line per licensed corpus that the tests need and `speat stimuli download` cannot fetch: where to get it
    and the folder layout (``$SPEAT_CORPUS_<NAME>`` or ``--stimuli DIR`` with ``DIR/<name>/``)."""
    from speat_metric.stimuli.battery import (
        BATTERY_BY_ID,
        LICENSED,
        CorpusUnavailableError,
        corpora_of,
        corpus_directory,
    )

    lines = {}
    for spec in specs:
        if spec.name not in BATTERY_BY_ID:
            continue
        for corpus in corpora_of(spec.name):
            if corpus.access == LICENSED and corpus_directory(corpus.name) is None:
                lines.setdefault(corpus.name, str(CorpusUnavailableError(spec.name, corpus)))
    return list(lines.values())


def _fetch_other_corpora(specs: Sequence[SpeatTestSpec], source: object, *, progress: bool) -> dict[str, str]:
    """Fetch the clips of the downloadable corpora (the synthesized voices, CORAAL, TORGO) the tests need and that
    have no user copy: their files by stimulus id (`speat_metric.stimuli.loaders.fetch_corpus_clips`)."""
    from speat_metric.stimuli.battery import CORPORA, DOWNLOADABLE, battery_clips, corpus_directory
    from speat_metric.stimuli.loaders import fetch_corpus_clips

    downloadable = {name for name, corpus in CORPORA.items() if corpus.access == DOWNLOADABLE}
    by_corpus: dict[str, dict[str, object]] = {}
    for spec in specs:
        for stimulus_id in spec.stimulus_ids:
            clip = battery_clips().get(stimulus_id)
            if clip is not None and clip.corpus in downloadable and corpus_directory(clip.corpus) is None:
                by_corpus.setdefault(clip.corpus, {})[stimulus_id] = clip
    files = {}
    for corpus, clips in by_corpus.items():
        files.update(fetch_corpus_clips(corpus, list(clips.values()), source, progress=progress))
    return files



if __name__ == "__main__":
    sys.exit(main())
