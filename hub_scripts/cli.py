"""``speat hub`` (also ``python -m speat_metric.hub``): SpEAT results on the Hugging Face Hub.

    speat hub render RESULTS_DIR [--model ID] [--card README.md]   # the YAML and section a card would get
    speat hub annotate MODEL_ID [--results DIR | --evaluate] [--commit | --create-pr] [--dry-run] [--force]
    speat hub annotate-many (--models FILE | --search QUERY [--filter TAG ...] | --tier base|popular|requested)
                            --state FILE [--max-prs-per-day N] [--opt-out FILE|OWNER/NAME]
                            [--backend local|jobs|slurm --shard-size N --results-repo ORG/DATA ...]
    speat hub push-results DIR --repo ORG/NAME                     # records -> a Hub dataset (load_dataset reads it)
    speat hub publish-module --space ORG/speat                     # evaluate.load("ORG/speat") from the Hub
    speat hub publish-space --space ORG/NAME --results-repo ORG/DATA   # the leaderboard as a Space
    speat hub publish-webhook --space ORG/NAME                     # the webhook service as a Docker Space
    speat hub publish-benchmark --repo ORG/NAME                    # the benchmark dataset .eval_results attach to
    speat hub webhook ...                                          # the annotation service (hub_scripts/webhook)
    speat hub on-event                                             # a webhook Job's work ($WEBHOOK_PAYLOAD)
    speat hub schedule --cron CRON --state-bucket B -- OPTIONS     # annotate-many as a scheduled Job

Commands that evaluate take every option of ``speat evaluate`` (``--stimuli``, ``--tests``, ``--permutations``,
...). The token comes from huggingface_hub's usual sources (``HF_TOKEN``, ``hf auth login``), the Hub from
``HF_ENDPOINT``; no command prints the token.

Other ``hub_scripts`` subpackages add their own subcommand: a module named in `SUBCOMMAND_MODULES` that exists
provides ``add_parser(commands)`` (``commands`` being the ``speat hub`` subparsers) and keeps heavy imports in its
handlers.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from speat_metric.hub.source import add_source_options, source_from_options

if TYPE_CHECKING:
    from speat_metric.hub.campaign_policy import OptOutList
    from speat_metric.hub.hub import HubClient

SUBCOMMAND_MODULES = ("speat_metric.hub.webhook.cli", "speat_metric.hub.on_event", "speat_metric.hub.schedule")
"""Modules that add a ``speat hub`` subcommand of their own, when they exist (``webhook``: issue 10; ``on-event``
and ``schedule``: issue 24)."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``hub`` subcommand to the ``speat`` parser (heavy imports stay inside the handlers)."""
    from speat_metric.cli import _paragraphs, evaluation_options

    hub = commands.add_parser(
        "hub", help="model cards, card pull requests, batch annotation, the results dataset and the evaluate "
        "module on the Hugging Face Hub",
        description="SpEAT results on the Hugging Face Hub. The token comes from HF_TOKEN or `hf auth login`, the Hub "
        "from HF_ENDPOINT.")
    hub.set_defaults(handler=lambda args: hub.print_help() or 0)
    hub_commands = hub.add_subparsers(dest="hub_command", title="hub commands")
    evaluating = evaluation_options()

    render = hub_commands.add_parser(
        "render", help="print the model-index YAML, the .eval_results file and the card section of some results",
        description="Render the card content of the records of one model at one revision (one record per test): "
        "the model-index results of README.md's YAML, .eval_results/speat.yaml and the 'Social bias (SpEAT)' "
        "section. Nothing is sent anywhere.")
    render.add_argument("results", type=Path, metavar="RESULTS_DIR", help="a directory of speat evaluate records")
    render.add_argument("--model", default=None, help="the model whose records to render (when there are several)")
    render.add_argument("--card", type=Path, default=None,
                        help="a README.md to merge into: print the whole merged card instead")
    render.add_argument("--profile", default=None, help="the records of this extraction profile (when the directory "
                        "holds several)")
    render.add_argument("--layer", default=None, metavar="N|mean",
                        help="the records of this layer view: mean (averaged over layers) or a layer number (when the "
                        "directory holds several)")
    render.add_argument("--allow-synthetic", action="store_true",
                        help="accept synthetic-stimuli or random-init records (labelled loudly)")
    render.add_argument("--benchmark", default=None, metavar="OWNER/NAME",
                        help="the SpEAT benchmark the results attach to (default $SPEAT_BENCHMARK): render "
                        ".eval_results for its tasks (reads its eval.yaml from the Hub); without one there is none")
    add_source_options(render)
    render.set_defaults(handler=_render)

    annotate = hub_commands.add_parser(
        "annotate", parents=[evaluating], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="put a model's SpEAT results on its Hub card (a pull request by default)",
        description=_paragraphs(
            "Evaluate a Hub model at one commit (or take existing --results) and put its SpEAT table on its card: "
            "model-index results, .eval_results/speat.yaml and a 'Social bias (SpEAT)' section. Everything else in "
            "the card stays byte-identical; running it again replaces our entries, never duplicates them.\n\n"
            "Default: a pull request. If speat's pull request is open, it is updated instead of opening another; "
            "if the owner closed it unmerged, nothing is opened unless --force. Nothing changed: no commit, no PR.\n\n"
            "The evaluation options are those of `speat evaluate` (see speat evaluate --help); --revision is the "
            "commit to evaluate (default: main's current commit), pinned in the card."))
    annotate.add_argument("model", metavar="MODEL_ID", help="the Hub model repository, OWNER/NAME")
    source = annotate.add_mutually_exclusive_group()
    source.add_argument("--results", type=Path, default=None,
                        help="publish these records (a speat evaluate --out directory) instead of evaluating; they "
                        "must come from evaluating the Hub id itself (speat evaluate OWNER/NAME), so that they pin its "
                        "commit: records of a local copy are refused")
    source.add_argument("--evaluate", action="store_true", help="evaluate the model now (the default)")
    _add_push_options(annotate)
    _add_opt_out_option(annotate)
    add_source_options(annotate)
    annotate.set_defaults(handler=_annotate)

    many = hub_commands.add_parser(
        "annotate-many", parents=[evaluating],
        help="annotate many models (a list, a Hub search or a tier), resumable through a state file",
        description="Annotate each model at its main commit, as `speat hub annotate --evaluate` does. The state "
        "file records every outcome as it happens: run the same command again to resume a killed batch (models "
        "done at their current revision are skipped, failures and deferred models retried). A failure is recorded "
        "and the batch goes on; a summary closes the run. Repositories on the --opt-out list, and those whose owner "
        "closed speat's pull request, are not touched; --max-prs-per-day leaves the models over the day's cap for the "
        "next day's run. The evaluation options are those of `speat evaluate`.")
    models = many.add_mutually_exclusive_group()
    models.add_argument("--models", type=Path, default=None, metavar="FILE",
                        help="a file of model ids, one per line (# comments allowed)")
    models.add_argument("--search", default=None, metavar="QUERY",
                        help="models of a Hub search whose model type speat reads (wav2vec2, hubert, ...); with "
                        "--tier base or popular it narrows the tier")
    many.add_argument("--tier", choices=("base", "popular", "requested"), default=None,
                      help="which models the campaign touches: base (the authors' pretrained wav2vec2, HuBERT, "
                      "WavLM, data2vec-audio, Whisper, MMS/XLS-R encoders), popular (the most downloaded speech "
                      "encoders, --limit of them, default 100) or requested (the --models file)")
    many.add_argument("--filter", action="append", default=[], metavar="TAG",
                      help="with --search or --tier popular: keep models with this tag, library or pipeline tag "
                      "(repeatable), e.g. --filter transformers --filter feature-extraction")
    many.add_argument("--limit", type=int, default=None,
                      help="with --search: at most this many search results; with --tier: this many models")
    many.add_argument("--state", type=Path, default=None, metavar="FILE",
                      help="the state file (JSON) that makes the batch resumable and counts the pull requests opened "
                      "per day (required)")
    many.add_argument("--max-prs-per-day", type=int, default=None, metavar="N",
                      help="open at most N new pull requests per UTC day, counted across runs in --state; models "
                      "over the cap stay deferred for the next day's run (updates of speat's open pull requests do "
                      "not count; default: no cap)")
    _add_opt_out_option(many)
    _add_push_options(many)
    add_source_options(many)
    _add_campaign_options(many)
    many.set_defaults(handler=_annotate_many, interrupted_hint="run the same command again: it resumes from --state, "
                      "skipping the models already done")

    push = hub_commands.add_parser(
        "push-results", help="upload records to a Hub dataset that datasets.load_dataset reads (one row per record)",
        description="Merge the records of a results directory into a Hub dataset repository (created if needed): "
        "one file per record key under records/, a dataset card with the types of every field. Records already "
        "there stay; a key is replaced only by a newer record; nothing changed means no commit.")
    push.add_argument("results", type=Path, metavar="DIR", help="a directory of speat evaluate records")
    push.add_argument("--repo", required=True, metavar="ORG/NAME", help="the dataset repository")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--dry-run", action="store_true", help="say what would change; push nothing")
    add_source_options(push)
    push.set_defaults(handler=_push_results)

    publish = hub_commands.add_parser(
        "publish-module", help='push the evaluate module as a Hub Space, so that evaluate.load("ORG/speat") works',
        description="Create or update a Space with the SpEAT measurement at its root (NAME.py), its card (tags "
        "evaluate, measurement), a Gradio app, and the speat it installs: the wheel of this speat, built from its "
        "source, or a release named by --requirement. Anyone with speat installed can then evaluate.load(\"ORG/NAME\") "
        "without speat register; the card and evaluate's own message say how to install it.")
    _add_space_options(publish, "e.g. my-org/speat")
    publish.set_defaults(handler=_publish_module)

    board = hub_commands.add_parser(
        "publish-space", help="push the SpEAT leaderboard (the Gradio app of `speat space`) as a Hub Space",
        description="Create or update a Gradio Space that runs `speat space` over a results dataset (the one `speat "
        "hub push-results` writes; default: the bundled synthetic example records), with the speat it installs: the "
        "wheel of this speat, built from its source, or a release named by --requirement. Publishing an unchanged "
        "speat again makes no commit.")
    _add_space_options(board, "e.g. my-org/speat-leaderboard")
    board.add_argument("--results-repo", default=None, metavar="ORG/NAME",
                       help="the results dataset the Space shows (a Space variable SPEAT_SPACE_REPO overrides it)")
    board.add_argument("--results-revision", default=None, metavar="REV",
                       help="a branch, tag or commit of --results-repo (default main)")
    board.set_defaults(handler=_publish_leaderboard)

    bench = hub_commands.add_parser(
        "publish-benchmark", help="create or update the SpEAT benchmark dataset that .eval_results attach to",
        description="Create or update a dataset repository that is the SpEAT benchmark: eval.yaml (one task per "
        "test), each test's selection manifest (no audio), fingerprints.json (the SHA-256 of every clip of the "
        "study's audio, read from --stimuli) and a dataset card. Unchanged content makes no commit. docs/hub.md says "
        "what only the Hub can do next (the allow-list).")
    bench.add_argument("--repo", required=True, metavar="ORG/NAME", help="the dataset repository")
    bench.add_argument("--stimuli", default="speat",
                       help="where the study's audio is read from to fingerprint it: speat (the download cache, "
                       "fetching what is missing; default), a directory, or a Hub dataset")
    bench.add_argument("--cache-dir", type=Path, default=None, help="stimulus cache for --stimuli speat")
    bench.add_argument("--tests", default=None,
                       help="comma-separated published tests to include (default gender,age,native; speat stimuli "
                       "list shows all 12 and where their audio comes from; each becomes a task of eval.yaml)")
    bench.add_argument("--private", action="store_true", help="create the repository as private")
    bench.add_argument("--dry-run", action="store_true", help="print what would change; push nothing")
    bench.add_argument("--no-progress", action="store_true", help="do not show download progress")
    bench.set_defaults(handler=_publish_benchmark)

    service = hub_commands.add_parser(
        "publish-webhook", help="push the webhook service (`speat hub webhook`) as a Docker Space",
        description="Create or update a Docker Space that runs `speat hub webhook`, with the speat it installs: the "
        "wheel of this speat, built from its source, or a release named by --requirement. Set the secrets "
        "SPEAT_WEBHOOK_SECRET and HF_TOKEN in the Space's settings (never on a command line); docs/webhook.md says "
        "how to register the webhook.")
    _add_space_options(service, "e.g. my-org/speat-webhook")
    service.set_defaults(handler=_publish_webhook)

    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                continue  # that subcommand is not part of this installation (yet)
            raise
        module.add_parser(hub_commands)


def say_without_benchmark(benchmark: str | None) -> None:
    """Say once, on stderr, that results without a benchmark get no ``.eval_results`` file."""
    if benchmark is None:
        print("note: no --benchmark (nor $SPEAT_BENCHMARK): cards get the model-index and the section, but no "
              ".eval_results file, which only attaches to a SpEAT benchmark on the Hub (docs/hub.md)", file=sys.stderr)


def _benchmark(args: argparse.Namespace) -> object:
    """The benchmark `--benchmark` (or $SPEAT_BENCHMARK) names, read from the Hub; None when none is named."""
    from speat_metric.stimuli.fingerprints import benchmark_from_environment

    benchmark = benchmark_from_environment(args.benchmark)
    if benchmark is None:
        return None
    from speat_metric.hub.benchmark import load_benchmark
    from speat_metric.hub.hub import HubClient

    return load_benchmark(HubClient(), benchmark)


def _add_push_options(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--create-pr", dest="create_pr", action="store_true", default=True,
                      help="open (or update) a pull request (the default)")
    mode.add_argument("--commit", dest="create_pr", action="store_false",
                      help="commit to main directly (needs write access to the repository)")
    parser.add_argument("--dry-run", action="store_true", help="print the diff of README.md and "
                        ".eval_results/speat.yaml; push nothing")
    parser.add_argument("--force", action="store_true",
                        help="open a new pull request even though the owner closed speat's last one unmerged")
    parser.add_argument("--allow-synthetic", action="store_true",
                        help="accept synthetic stimuli (--stimuli demo) or random-init results; the card labels them "
                        "loudly as not a bias measurement")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the records to this directory (default: not kept)")


def _add_opt_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opt-out", default=None, metavar="FILE|OWNER/NAME",
                        help="owners and repositories to leave alone: a file, or a Hub dataset holding opt-out.txt or "
                        "opt-out.csv (one owner or OWNER/NAME per line, # comments allowed); pull requests name the "
                        "dataset as where to ask to be added")


def _opt_out(spec: str | None, client: HubClient | None = None) -> OptOutList:
    """The `OptOutList` of --opt-out (an empty one without it)."""
    from speat_metric.hub.campaign_policy import OptOutList, load_opt_out

    return load_opt_out(spec, client) if spec is not None else OptOutList()


def _add_space_options(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("--space", required=True, metavar="ORG/NAME", help=f"the Space ({example})")
    parser.add_argument("--requirement", default=None, metavar="SPEC",
                        help="install this released speat in the Space (e.g. 'speat==0.2.0') instead of uploading "
                        "the wheel of this speat")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; push nothing")


def _records_of(results: Path, model: str | None) -> list:
    from speat_metric.results import load_records

    if not results.is_dir():
        raise FileNotFoundError(f"results directory {str(results)!r} does not exist")
    records = load_records(results)
    if not records:
        raise ValueError(f"{results} holds no evaluation records (*.json written by speat evaluate --out)")
    if model is None:
        return records
    chosen = [record for record in records if model in (record.model.name, record.model_label)]
    if not chosen:
        names = sorted({record.model.name for record in records})
        raise ValueError(f"{results} has no records of {model!r}; it has records of {', '.join(names)}")
    return chosen


def _render(args: argparse.Namespace) -> int:
    from huggingface_hub.utils import yaml_dump

    from speat_metric.hub.card import render_card
    from speat_metric.hub.card_merge import merge_card

    records = [record for record in _records_of(args.results, args.model) if args.profile in (None, record.profile)
               and args.layer in (None, str(record.pooling.get("layer") if record.pooling.get("layer") is not None
                                             else "mean"))]
    if not records:
        raise ValueError(f"{args.results} has no records of profile {args.profile or 'any'} and layer view "
                         f"{args.layer or 'any'}")
    content = render_card(records, repo_id=args.model, allow_synthetic=args.allow_synthetic,
                          source=source_from_options(args), benchmark=_benchmark(args))
    if args.card is not None:
        if not args.card.is_file():
            raise FileNotFoundError(f"--card {str(args.card)!r} does not exist")
        print(merge_card(args.card.read_text(encoding="utf-8"), content), end="")
        return 0
    print("# README.md metadata: model-index results")
    print(yaml_dump({"model-index": [{"name": content.model.split("/")[-1], "results": content.model_index_results}]},
                    sort_keys=False))
    print("# .eval_results/speat.yaml")
    print(content.eval_file or "(none: the results attach to no SpEAT benchmark; give --benchmark)\n")
    print("# README.md section")
    print(content.section, end="")
    return 0


def _annotate(args: argparse.Namespace) -> int:
    from speat_metric.hub.annotate import annotate_model, publish_records
    from speat_metric.hub.campaign_policy import CampaignPolicy
    from speat_metric.repo_ids import check_repo_id

    check_repo_id(args.model, "MODEL_ID", "facebook/hubert-base-ls960")

    options = dict(create_pr=args.create_pr, force=args.force, allow_synthetic=args.allow_synthetic,
                   dry_run=args.dry_run, source=source_from_options(args),
                   policy=CampaignPolicy(opt_out=_opt_out(args.opt_out)))
    from speat_metric.stimuli.fingerprints import benchmark_from_environment

    benchmark = benchmark_from_environment(args.benchmark)
    if args.results is not None:
        outcome = publish_records(args.model, _records_of(args.results, args.model), benchmark=benchmark, **options)
    else:
        from speat_metric.cli import evaluation_settings
        from speat_metric.files import check_writable_directory

        if args.out is not None:
            check_writable_directory(args.out, "--out", "the results")
        outcome = annotate_model(args.model, revision=args.revision or "main", settings=evaluation_settings(args),
                                 **options)
        if args.out is not None:
            for record in outcome.records:
                record.save(args.out)
    if outcome.diff:
        print(outcome.diff, end="")
    print(outcome.summary)
    say_without_benchmark(benchmark)
    return 0


def _annotate_many(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from speat_metric.cli import evaluation_settings
    from speat_metric.hub.batch import annotate_many, select_models
    from speat_metric.hub.campaign import check_campaign_options, run_campaign, write_shard_outcomes
    from speat_metric.hub.campaign_policy import check_max_prs_per_day
    from speat_metric.hub.hub import HubClient

    if args.shard is not None:
        return write_shard_outcomes(args.shard)
    if args.state is None:
        raise ValueError("annotate-many needs --state FILE: the state file that makes the campaign resumable")
    if args.revision is not None:
        raise ValueError("--revision does not apply: annotate-many evaluates each model at its main branch's current "
                         "commit (annotate one model at a revision with `speat hub annotate MODEL --revision REV`)")
    check_max_prs_per_day(args.max_prs_per_day)
    settings = evaluation_settings(args)
    source = source_from_options(args)
    backend = None
    if args.backend != "local":
        check_campaign_options(shard_size=args.shard_size, max_attempts=args.max_attempts,
                               poll_interval=args.poll_interval)
        if args.dry_run or args.out is not None:
            raise ValueError(f"--backend {args.backend} pushes to the Hub and keeps records in --results-repo: "
                             "--dry-run and --out go with --backend local")
        if args.results_repo is not None:
            from speat_metric.repo_ids import check_repo_id

            check_repo_id(args.results_repo, "--results-repo")
        backend = _campaign_backend(args, source)
        if args.backend == "jobs" and args.stimuli_dataset is not None:
            from speat_metric.hub.jobs import STIMULI_MOUNT

            settings = dataclasses.replace(settings, stimuli=STIMULI_MOUNT)  # where every Job sees the dataset
    client = HubClient()
    opt_out = _opt_out(args.opt_out, client)
    models = select_models(client, tier=args.tier, models_file=args.models, search=args.search, filters=args.filter,
                           limit=args.limit)
    if args.backend == "local":
        summary = annotate_many(models, settings, state_path=args.state, create_pr=args.create_pr, force=args.force,
                                allow_synthetic=args.allow_synthetic, dry_run=args.dry_run, out=args.out,
                                report=tqdm.write, source=source, opt_out=opt_out,
                                max_prs_per_day=args.max_prs_per_day)
    else:
        summary = run_campaign(models, settings, backend, state_path=args.state, shard_size=args.shard_size,
                               max_attempts=args.max_attempts, create_pr=args.create_pr, force=args.force,
                               allow_synthetic=args.allow_synthetic, results_repo=args.results_repo, source=source,
                               opt_out=opt_out, max_prs_per_day=args.max_prs_per_day,
                               poll_interval=args.poll_interval, report=print)
    print("\n".join(summary.lines()))
    say_without_benchmark(settings.benchmark)
    return 1 if summary.failed else 0


def _add_campaign_options(parser: argparse.ArgumentParser) -> None:
    """annotate-many's backends (speat_metric.hub.campaign): where the shards of a campaign run."""
    from speat_metric.hub.campaign import BACKENDS, DEFAULT_MAX_ATTEMPTS, DEFAULT_SHARD_SIZE
    from speat_metric.hub.jobs import add_job_options

    group = parser.add_argument_group(
        "backends", "local (default) annotates one model after the other here; jobs and slurm split the models "
        "into shards, each one Hugging Face Job or Slurm task, and follow them (docs/hub.md)")
    group.add_argument("--backend", choices=BACKENDS, default="local", help="where the models are evaluated")
    group.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N",
                       help=f"models per shard (default {DEFAULT_SHARD_SIZE})")
    group.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS, metavar="N",
                       help="runs of one shard at most before its unfinished models are failed (default "
                       f"{DEFAULT_MAX_ATTEMPTS})")
    group.add_argument("--results-repo", default=None, metavar="OWNER/NAME",
                       help="the results dataset every shard pushes its records to (as push-results does)")
    group.add_argument("--poll-interval", type=float, default=10.0, metavar="SECONDS",
                       help="seconds between looks at the running shards (default 10)")
    group.add_argument("--slurm-partition", default=None, help="slurm: the partition")
    group.add_argument("--slurm-time", type=int, default=None, metavar="MINUTES", help="slurm: the time limit")
    group.add_argument("--slurm-gpus", type=int, default=None, metavar="N", help="slurm: GPUs per task")
    group.add_argument("--slurm-folder", type=Path, default=None,
                       help="slurm: where submitit keeps its files (default: beside --state)")
    group.add_argument("--slurm-cluster", choices=("slurm", "local", "debug"), default=None,
                       help="slurm: submitit's cluster (default: Slurm if there is one; local runs the tasks here)")
    group.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # what a shard's process runs (JSON task)
    add_job_options(parser, what="a shard (--backend jobs)")


def _campaign_backend(args: argparse.Namespace, source: object) -> object:
    """The `ShardBackend` of --backend jobs|slurm, every option checked before anything starts."""
    from speat_metric.hub.campaign import JobsBackend, SlurmBackend

    if args.backend == "slurm":
        named = {"slurm_partition": args.slurm_partition, "timeout_min": args.slurm_time,
                 "gpus_per_node": args.slurm_gpus}
        parameters = {key: value for key, value in named.items() if value is not None}
        if args.slurm_time is not None and args.slurm_time < 1:
            raise ValueError(f"--slurm-time must be 1 minute or more, not {args.slurm_time}")
        return SlurmBackend(args.slurm_folder or args.state.parent / f"{args.state.stem}-slurm",
                            cluster=args.slurm_cluster, parameters=parameters)
    from huggingface_hub import HfApi, get_token

    from speat_metric.hub.jobs import job_runtime

    runtime = job_runtime(args, source.install if args.source_space else None)  # a --requirement is no wheel
    return JobsBackend(HfApi(), runtime, token=get_token(), campaign=args.state.stem)


def _push_results(args: argparse.Namespace) -> int:
    from speat_metric.hub.results_dataset import push_results

    outcome = push_results(_records_of(args.results, None), args.repo, private=args.private, dry_run=args.dry_run,
                           source=source_from_options(args))
    print(("dry run: " if args.dry_run else "") + outcome.summary)
    return 0


def _publish_module(args: argparse.Namespace) -> int:
    from speat_metric.hub.module_space import publish_module

    outcome = publish_module(args.space, requirement=args.requirement, private=args.private, dry_run=args.dry_run)
    return _published(outcome, f"load it with evaluate.load({args.space!r})")


def _publish_leaderboard(args: argparse.Namespace) -> int:
    from speat_metric.hub.leaderboard_space import publish_leaderboard

    outcome = publish_leaderboard(args.space, results_repo=args.results_repo, revision=args.results_revision,
                                  requirement=args.requirement, private=args.private, dry_run=args.dry_run)
    return _published(outcome, "the Space builds and starts on its own")


def _publish_webhook(args: argparse.Namespace) -> int:
    from speat_metric.hub.webhook.space import publish_webhook_space

    outcome = publish_webhook_space(args.space, requirement=args.requirement, private=args.private,
                                    dry_run=args.dry_run)
    return _published(outcome, "set its secrets SPEAT_WEBHOOK_SECRET and HF_TOKEN in the Space's settings")


def _publish_benchmark(args: argparse.Namespace) -> int:
    from speat_metric.hub.benchmark import publish_benchmark

    tests = [test.strip() for test in args.tests.split(",") if test.strip()] if args.tests else None
    outcome = publish_benchmark(args.repo, stimuli=args.stimuli, tests=tests, stimulus_cache_dir=args.cache_dir,
                                private=args.private, dry_run=args.dry_run, progress=not args.no_progress)
    return _published(outcome, f"attach results with --benchmark {args.repo} (or SPEAT_BENCHMARK={args.repo}); "
                      "ask the Hub to allow-list it (docs/hub.md)")


def _published(outcome: object, next_step: str) -> int:
    if outcome.diff and outcome.status == "dry-run":
        print(outcome.diff, end="")
    print(f"{'dry run: ' if outcome.status == 'dry-run' else ''}{outcome.summary}; {next_step}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from speat_metric.cli import run_package_command

    sys.exit(run_package_command("hub"))
