"""The SpEAT benchmark as a Hub dataset repository: ``speat hub publish-benchmark --repo ORG/NAME``.

On the Hub, a model's ``.eval_results`` entry shows on its page and on a leaderboard only when its ``dataset.id`` is
a **Benchmark**: a dataset repository with an ``eval.yaml`` (name, description, evaluation framework, tasks) that the
Hub has allow-listed, and whose tasks include the entry's ``task_id``. `publish_benchmark` makes that repository:

- ``eval.yaml``: the benchmark's name, a description that states the sign convention of d (and that 0 means no
  measured association), ``evaluation_framework: speat``, and one task per test (``id`` = config = the test id,
  split ``test``);
- ``data/<test>.jsonl``: each test's selection manifest, one row per stimulus (id, role, group, matched pair, the
  speaker or clip metadata a test needs, the SHA-256 of the audio file); no audio;
- ``fingerprints.json``: the study's audio as read when publishing, each clip's SHA-256 and each test's fingerprint
  (`speat_metric.stimuli.fingerprints.BenchmarkReference`), which downloads and evaluations compare with;
- ``README.md``: the dataset card (what SpEAT measures, how each test is built, where the audio comes from and on what
  terms, how results are computed and read, citations), with one ``configs`` entry per test.

`load_benchmark` reads a benchmark back (its tasks, at its current commit) for the commands that attach results to
it. Unchanged content makes no commit.

Example:
    >>> publish_benchmark("my-org/speat-benchmark")                 # doctest: +SKIP
    PublishOutcome(repo_id='my-org/speat-benchmark', status='committed', ...)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huggingface_hub.utils import yaml_dump

from speat_metric import __version__
from speat_metric.hub.hub import HubClient, HubError
from speat_metric.hub.publishing import PublishOutcome, publish_files
from speat_metric.hub.source import PAPERS
from speat_metric.stimuli.fingerprints import (
    REFERENCE_FILE,
    BenchmarkReference,
    rows_fingerprint,
    short_fingerprint,
)

if TYPE_CHECKING:
    from speat_metric.stimuli.loaders import StimulusSet

EVAL_FILE = "eval.yaml"
EVALUATION_FRAMEWORK = "speat"
SPLIT = "test"
DATA_FOLDER = "data"
MANIFEST_DROP = ("audio",)
"""Columns of a loaded test that stay out of the manifests: the audio itself (its path on this machine)."""

DESCRIPTION = (
    "The Speech Embedding Association Test (SpEAT; Slaughter et al., 2023, as applied to self-supervised speech models "
    "by Lin et al., 2024) measures whether a speech model's embeddings tie one group of speakers (X) more closely than "
    "another (Y) to pleasant (A) rather than unpleasant (B) speech. Each task is one test; its value is the effect "
    "size d = (mean over X of s - mean over Y of s) / standard deviation of s over X and Y, with s(w) = mean cosine "
    "of w with A minus mean cosine with B. Positive d: X sits closer to pleasant speech than Y does; negative d: Y "
    "does; 0 means no measured association. |d| of 0.2, 0.5 and 0.8 are small, medium and large. A small |d| is not "
    "evidence that a model is fair."
)


class BenchmarkError(ValueError):
    """A repository is not a SpEAT benchmark that results can attach to; the message says what to do."""


@dataclass(frozen=True)
class Benchmark:
    """A SpEAT benchmark on the Hub, as read at one commit.

    Attributes:
        repo_id: the dataset repository.
        revision: the commit its ``eval.yaml`` was read at.
        tasks: the task ids its ``eval.yaml`` defines.
        url: its page on the Hub it was read from.
    """

    repo_id: str
    revision: str
    tasks: tuple[str, ...]
    url: str


def eval_yaml(test_ids: Sequence[str]) -> str:
    """The benchmark's ``eval.yaml``."""
    return yaml_dump({"name": "SpEAT: Speech Embedding Association Test", "description": DESCRIPTION,
                      "evaluation_framework": EVALUATION_FRAMEWORK,
                      "tasks": [{"id": test, "config": test, "split": SPLIT} for test in test_ids]}, sort_keys=False)


def read_tasks(text: str, *, repo_id: str) -> tuple[str, ...]:
    """The task ids of an ``eval.yaml``.

    Raises:
        BenchmarkError: not an ``eval.yaml`` with a name and tasks that have ids.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BenchmarkError(f"{EVAL_FILE} of {repo_id} is not YAML ({str(error).splitlines()[0]})") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not data.get("name") or not isinstance(tasks, list) or not tasks or not all(
            isinstance(task, dict) and isinstance(task.get("id"), str) and task["id"] for task in tasks):
        raise BenchmarkError(f"{EVAL_FILE} of {repo_id} is not a benchmark definition (it needs a name and tasks, each "
                             "with an id); publish it with `speat hub publish-benchmark`")
    return tuple(task["id"] for task in tasks)


def load_benchmark(client: HubClient, repo_id: str) -> Benchmark:
    """The benchmark `repo_id` at its current main commit.

    Raises:
        BenchmarkError: no such dataset, or no valid ``eval.yaml`` in it.
        HubError: the Hub failed otherwise.
    """
    try:
        revision = client.head(repo_id, repo_type="dataset")
    except HubError as error:
        raise BenchmarkError(f"--benchmark {repo_id}: {error}") from None
    text = client.read_text(repo_id, EVAL_FILE, revision=revision, repo_type="dataset")
    if text is None:
        raise BenchmarkError(f"--benchmark {repo_id} has no {EVAL_FILE}: it is not a benchmark (make one with `speat "
                             f"hub publish-benchmark --repo {repo_id}`)")
    return Benchmark(repo_id, revision, read_tasks(text, repo_id=repo_id), f"{client.endpoint}/datasets/{repo_id}")


def manifest_rows(test: StimulusSet) -> list[dict[str, Any]]:
    """A loaded test's stimuli without their audio: what the benchmark lists of each stimulus."""
    return [{key: value for key, value in stimulus.row().items() if key not in MANIFEST_DROP} for stimulus in test]


def benchmark_reference(repo_id: str, tests: Mapping[str, StimulusSet]) -> BenchmarkReference:
    """Each clip's SHA-256 and each test's fingerprint, from the loaded tests."""
    clips, fingerprints = {}, {}
    for name, test in tests.items():
        clips.update({stimulus.stimulus_id: stimulus.sha256 for stimulus in test})
        fingerprints[name] = rows_fingerprint(test)["test"]
    return BenchmarkReference(repo_id, None, fingerprints, clips)


def benchmark_files(repo_id: str, tests: Mapping[str, StimulusSet]) -> dict[str, str]:
    """Path -> text of every file of the benchmark repository."""
    reference = benchmark_reference(repo_id, tests)
    files = {EVAL_FILE: eval_yaml(list(tests)), REFERENCE_FILE: reference.to_json(),
             "README.md": dataset_card(repo_id, tests, reference)}
    for name, test in tests.items():
        files[f"{DATA_FOLDER}/{name}.jsonl"] = "".join(json.dumps(row, sort_keys=True) + "\n"
                                                       for row in manifest_rows(test))
    return files


def publish_benchmark(repo_id: str, *, stimuli: str = "speat", tests: Sequence[str] | None = None,
                      stimulus_cache_dir: str | None = None, private: bool = False, dry_run: bool = False,
                      progress: bool = True, token: str | None = None, endpoint: str | None = None
                      ) -> PublishOutcome:
    """Create or update the SpEAT benchmark repository.

    Args:
        repo_id: the dataset repository, ``owner/name``.
        stimuli: where the study's audio is read from to fingerprint it (``speat``: the download cache, fetching
            what is missing; a directory; a Hub dataset); every clip must be there.
        tests: the published tests (default: speat's original three, gender, age and native; any of the 12,
            `speat stimuli list`).
        stimulus_cache_dir: the stimulus cache for ``stimuli="speat"``.
        private: create the repository as private.
        dry_run: push nothing; the outcome carries the diff.
        progress: show download progress.
        token, endpoint: as in `speat_metric.hub.hub.HubClient`.

    Raises:
        ValueError: a malformed id, a missing or unreadable clip (naming them), the synthetic demo set, or a Hub
            failure.
    """
    from speat_metric.repo_ids import check_repo_id
    from speat_metric.stimuli import TEST_NAMES, get_speat_test, load_speat_test
    from speat_metric.stimuli.errors import MissingStimuliError, UnreadableStimulusError, shown_ids

    check_repo_id(repo_id, "--repo")
    for name in tests or ():
        get_speat_test(name)  # an unknown test stops here, naming the published ones
    if stimuli == "demo":
        raise BenchmarkError("--stimuli demo is synthetic speech: the benchmark fingerprints the study's audio; use "
                             "--stimuli speat (downloads) or your copy of it")
    loaded = {}
    for name in tests or TEST_NAMES:
        try:
            loaded[name] = load_speat_test(name, source=stimuli, cache_dir=stimulus_cache_dir, progress=progress)
        except MissingStimuliError as error:  # its advice (--allow-missing) is for speat evaluate: every clip counts
            raise BenchmarkError(f"the benchmark records every clip of the study, and {len(error.missing)} of the "
                                 f"{name!r} test are missing from {error.source} ({shown_ids(list(error.missing))}); "
                                 "fetch them with `speat stimuli download` and use --stimuli speat, or give --stimuli "
                                 "a copy that holds them") from None
        except UnreadableStimulusError as error:
            raise BenchmarkError(f"the benchmark records every clip of the study: {error.problem}") from None
    return publish_files(HubClient(token=token, endpoint=endpoint), repo_id, benchmark_files(repo_id, loaded),
                         repo_type="dataset", what="the SpEAT benchmark", private=private, dry_run=dry_run)


def _test_rows(tests: Mapping[str, StimulusSet], reference: BenchmarkReference) -> list[str]:
    rows = ["| task id | X vs Y | A vs B | stimuli X/Y/A/B | matched pairs | audio fingerprint |",
            "|---|---|---|---|---|---|"]
    for name, test in tests.items():
        by_role = {role: test.of_role(role) for role in "XYAB"}
        groups = {role: by_role[role][0].group for role in "XYAB"}
        sizes = "/".join(str(len(by_role[role])) for role in "XYAB")
        pairs = sum(stimulus.pair_id is not None for stimulus in by_role["X"])
        rows.append(f"| `{name}` | {groups['X']} vs {groups['Y']} | {groups['A']} vs {groups['B']} | {sizes} | "
                    f"{pairs or 'none'} | `{short_fingerprint(reference.tests[name])}` |")
    return rows


def dataset_card(repo_id: str, tests: Mapping[str, StimulusSet], reference: BenchmarkReference) -> str:
    """The benchmark's README.md: YAML header (configs per test, licence, tags) and the card."""
    from speat_metric.stimuli import get_speat_test

    header = {"pretty_name": "SpEAT", "license": "other", "license_name": "speat-stimulus-selections",
              "tags": ["speech", "bias", "fairness", "benchmark", "speat"],
              "configs": [{"config_name": name, "data_files": [{"split": SPLIT, "path": f"{DATA_FOLDER}/{name}.jsonl"}]}
                          for name in tests]}
    citations = {citation.key: citation for name in tests for citation in get_speat_test(name).citations}
    descriptions = [f"- **`{name}`**: {test.description.split(chr(10))[0]}" for name, test in tests.items()]
    body = "\n".join([
        "# SpEAT: Speech Embedding Association Test",
        "",
        DESCRIPTION,
        "",
        "This dataset is the SpEAT **benchmark**: its `eval.yaml` defines one task per test, and models' "
        "`.eval_results` that name this dataset and a task id show on the model's page and on this dataset's "
        "leaderboard. It holds no audio: each test's selection manifest (`data/<test>.jsonl`: every stimulus's id, "
        "role, group, matched pair, the speaker's or clip's metadata and the SHA-256 of its audio file) and "
        f"`{REFERENCE_FILE}`, the SHA-256 of every clip as read when this benchmark was published.",
        "",
        "## The tests",
        "",
        *_test_rows(tests, reference),
        "",
        *descriptions,
        "",
        "Targets (X, Y) are Speech Accent Archive speakers reading the same English paragraph; attributes (A, B) are "
        "the Morgan Emotional Speech Set clips rated highest (pleasant) and lowest (unpleasant) in valence, 10 of "
        "each per talker, as selected by Slaughter et al. (2023).",
        "",
        "## Where the audio comes from, and on what terms",
        "",
        "- Speech Accent Archive (Weinberger, George Mason University, https://accent.gmu.edu): licence CC BY-NC-SA "
        "2.0. The manifests carry the archive's speaker metadata under the same terms.",
        "- Morgan Emotional Speech Set (Zenodo, https://zenodo.org/records/3813437): see the record's licence.",
        "",
        "`speat stimuli download --benchmark " + repo_id + "` fetches the audio from those sources and reports "
        "every clip whose bytes differ from this benchmark's record; results made from such audio are labelled "
        "`stimuli-differ`. The audio fingerprint of a test is one SHA-256 over its clips' SHA-256s, per role.",
        "",
        "## Computing and reading a result",
        "",
        "```bash",
        f"speat evaluate MODEL --stimuli speat --benchmark {repo_id}",
        f"speat hub annotate ORG/MODEL --stimuli speat --benchmark {repo_id}   # a card PR with .eval_results",
        "```",
        "",
        "For each layer, embeddings are averaged over each clip's frames, then over layers; d is the effect size "
        "above, p the one-sided permutation p-value (1,000,000 random re-partitions of X and Y by default), and the "
        "interval a 95% bootstrap over the targets. SpEAT measures associations in one model's embedding space on "
        "these stimuli; it is not a measure of harm in any downstream use.",
        "",
        "## Citations",
        "",
        *(f"- {citation.text} {citation.url}" for citation in citations.values()),
        f"- Lin, Lin, Lin, Liu and Lee (2024). On the social bias of speech self-supervised models. Interspeech 2024. "
        f"{PAPERS['Lin et al. (2024)']}",
        "",
        f"Published by speat {__version__} (`speat hub publish-benchmark`).",
        "",
    ])
    return f"---\n{yaml_dump(header, sort_keys=False)}---\n{body}"
