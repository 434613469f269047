"""SpEAT records as a Hub dataset repository: ``speat hub push-results DIR --repo ORG/NAME``.

Layout (what the Space and ``datasets.load_dataset("ORG/NAME")`` read):

- ``records/<model>__<revision>__<test>__<layers>-<frames>[__<profile>].json``: one file per record key (model,
  revision or weight hash, test, layer view, frame pooling, profile), each holding ``EvaluationRecord.to_json()``
  on one line, so that every file is also a one-row JSON Lines file;
- ``README.md``: a dataset card whose YAML header has a ``configs`` entry (``records/*.json`` as the ``train``
  split) and ``dataset_info.features`` (`record_features`): the types of every field, so that pyarrow never has to
  guess them across files. Free-form fields (model settings, stimulus provenance, environment, checkpoint,
  compression) are ``datasets.Json``; ``load_dataset`` gives them back as dicts. (Because of those fields, datasets
  re-encodes each row with pandas' ujson, which keeps 10 significant digits of every number; the files hold the
  exact values, which ``EvaluationRecord.from_json`` of a downloaded file gives.)

Pushing merges: new keys are added, a key already there is replaced only by a newer record (``created``), nothing
else is touched (others' records stay), and nothing changed means no commit. Every record is checked against the
features before anything is pushed.

Example:
    >>> from speat_metric.results import load_records
    >>> push_results(load_records("results"), "me/speat-results")        # doctest: +SKIP
    PushOutcome(repo_id='me/speat-results', added=3, ...)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from speat_metric import __version__
from speat_metric.hub import SPEAT_TITLE_PREFIX
from speat_metric.hub.card_merge import set_yaml_keys
from speat_metric.hub.hub import HubClient, git_blob_id
from speat_metric.hub.source import SpeatSource
from speat_metric.repo_ids import check_repo_id
from speat_metric.results import RECORD_SCHEMA_VERSION, EvaluationRecord

if TYPE_CHECKING:
    import datasets

RECORDS_FOLDER = "records"
README_PATH = "README.md"

_DATASET_CARD_BODY = """
# SpEAT results

Speech Embedding Association Test (SpEAT) results of speech models, written by
{speat}'s `speat hub push-results`: one row per evaluation record
(`speat_metric.results.EvaluationRecord`), one JSON file per record in `records/`.

```python
import datasets

results = datasets.load_dataset("{repo_id}", split="train")
results[0]["model"]["name"], results[0]["test"], results[0]["speat"]["effect_size"]
```

Rows labelled `synthetic-stimuli` were computed on speat's synthetic demo stimuli: a pipeline check, not a bias
measurement. `random-init` rows are of randomly initialised models. `fingerprint.test` identifies the audio a row was
computed from (tables show its first 12 digits): rows with different fingerprints were computed from different audio,
and `stimuli-differ` rows from audio that differs from the SpEAT benchmark's.
"""


@dataclass(frozen=True)
class PushOutcome:
    """What `push_results` did.

    Attributes:
        repo_id: the dataset repository.
        added: records whose key was not there yet.
        updated: records that replaced an older record of the same key.
        unchanged: records already there, identical.
        kept: records not pushed because the repository holds a newer record of the same key.
        commit: the commit made (None when nothing changed, or a dry run).
        url: the dataset's page.
    """

    repo_id: str
    added: int
    updated: int
    unchanged: int
    kept: int
    commit: str | None
    url: str

    @property
    def summary(self) -> str:
        counts = f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged"
        kept = f", {self.kept} kept (the repository's record is newer)" if self.kept else ""
        pushed = f"commit {self.commit[:12]}" if self.commit else "no commit"
        return f"{self.repo_id}: {counts}{kept}; {pushed} ({self.url})"


def dataset_path(record: EvaluationRecord) -> str:
    """Where a record lives in the dataset repository: one path per record key.

    Example:
        >>> from speat_metric.results import load_records
        >>> dataset_path(load_records("results")[0])                     # doctest: +SKIP
        'records/facebook-hubert-base-ls960__dba3bb02fda4248b__gender__mean-mean.json'
    """
    model, rest = record.file_name.split("__", 1)  # the results directory's name, plus the revision
    return f"{RECORDS_FOLDER}/{model}__{(record.key[1] or 'none')[:16]}__{rest}"


def record_features() -> datasets.Features:
    """The ``datasets`` types of an `EvaluationRecord` row (schema version 4); free-form parts are ``Json``."""
    from datasets import Features, Json, List, Value

    text, integer, number, flag = Value("string"), Value("int64"), Value("float64"), Value("bool")
    scores = List({"id": text, "s": number})
    return Features({
        "schema_version": integer, "test": text, "groups": {role: text for role in "XYAB"},
        "model": {"name": text, "kind": text, "revision": text, "weights_sha256": text, "num_parameters": integer,
                  "num_layers": integer, "settings": Json()},
        "speat": {"effect_size": number, "p_value": number, "ci_low": number, "ci_high": number, "n_x": integer,
                  "n_y": integer, "n_a": integer, "n_b": integer, "num_permutations": integer, "exact": flag,
                  "seed": integer, "alternative": text, "test_statistic": number, "confidence": number,
                  "n_bootstrap": integer, "paired": flag, "ddof": integer, "speat_version": text,
                  "schema_version": integer, "effect_size_label": text},
        "pooling": {"frame_pooling": text, "layer_pooling": text, "layer": integer},
        "stimuli": Json(), "environment": Json(), "created": text, "labels": List(text), "checkpoint": Json(),
        "profile": text, "compression": Json(), "association_scores": {"X": scores, "Y": scores},
        "fingerprint": {"test": text, "clips": {role: List(text) for role in "XYAB"}, "reference": Json()},
        "cosines": {**{role: List(text) for role in "XYAB"}, "pairs": List(List(text)), "dtype": text, "values": text},
    })


def check_records(records: Sequence[EvaluationRecord]) -> None:
    """Raise a ValueError naming the first record that the dataset's features cannot hold (before any push)."""
    import datasets

    features = record_features()
    for record in records:
        if record.schema_version != RECORD_SCHEMA_VERSION:
            raise ValueError(f"{dataset_path(record)}: record schema version {record.schema_version}; the results "
                             f"dataset holds version {RECORD_SCHEMA_VERSION} (re-run speat evaluate with this speat)")
        row = json.loads(record.to_json())
        missing = set(features) ^ set(row)
        if missing:
            raise ValueError(f"{dataset_path(record)}: fields {sorted(missing)} do not match the dataset's features")
        try:
            datasets.Dataset.from_list([row], features=features)
        except (TypeError, ValueError, OverflowError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"{dataset_path(record)} ({record.model_label}, {record.test}) does not fit the "
                             f"results dataset's types: {first}") from None


def push_results(records: Sequence[EvaluationRecord], repo_id: str, *, private: bool = False, dry_run: bool = False,
                 source: SpeatSource = SpeatSource(),
                 token: str | None = None, endpoint: str | None = None) -> PushOutcome:
    """Merge records into a Hub dataset repository (created if needed), in one commit, or none if nothing changed.

    Args:
        records: the records to push (of any models); of several with one key, the newest is pushed.
        repo_id: the dataset repository, ``owner/name``.
        private: create the repository as private (an existing one keeps its visibility).
        dry_run: count what would change, push nothing (and create nothing).
        source: where a new dataset card tells readers to get speat (`speat_metric.hub.source`).
        token, endpoint: as in `speat_metric.hub.hub.HubClient`.

    Returns:
        The `PushOutcome`.

    Raises:
        ValueError: no records, a record the dataset's types cannot hold, or a Hub failure (`HubError`).
    """
    check_repo_id(repo_id, "--repo")
    if not records:
        raise ValueError("no evaluation records to push")
    newest: dict[str, EvaluationRecord] = {}
    for record in (record.without_machine_paths() for record in records):  # no home directory leaves the machine
        path = dataset_path(record)
        if path not in newest or record.created > newest[path].created:
            newest[path] = record
    check_records(list(newest.values()))
    client = HubClient(token=token, endpoint=endpoint)
    url = f"{client.endpoint}/datasets/{repo_id}"
    if not dry_run:
        client.ensure_repo(repo_id, repo_type="dataset", private=private)
    exists = not dry_run or _exists(client, repo_id)
    head = client.head(repo_id, repo_type="dataset") if exists else None
    remote = client.file_ids(repo_id, RECORDS_FOLDER, repo_type="dataset", revision=head) if head else {}
    files: dict[str, str] = {}
    added = updated = unchanged = kept = 0
    for path, record in sorted(newest.items()):
        content = record.to_json() + "\n"
        if path not in remote:
            files[path], added = content, added + 1
        elif remote[path] == git_blob_id(content.encode()):
            unchanged += 1
        elif _remote_is_newer(client, repo_id, path, head, record):
            kept += 1
        else:
            files[path], updated = content, updated + 1
    readme = client.read_text(repo_id, README_PATH, revision=head, repo_type="dataset") if head else None
    card = dataset_card(readme, repo_id, source)
    if card != (readme or ""):
        files[README_PATH] = card
    commit = None
    if files and not dry_run:
        info = client.commit(repo_id, files, summary=f"{SPEAT_TITLE_PREFIX} Add {added} and update {updated} SpEAT "
                             "records", description=f"Pushed by speat {__version__} (`speat hub push-results`).",
                             repo_type="dataset", parent_commit=head)
        commit = info.oid
    return PushOutcome(repo_id, added, updated, unchanged, kept, commit, url)


def dataset_card(readme: str | None, repo_id: str, source: SpeatSource = SpeatSource()) -> str:
    """The dataset card with our ``configs`` and ``dataset_info`` in its YAML header (everything else kept)."""
    features = record_features()._to_yaml_list()
    values = {"configs": [{"config_name": "default", "data_files": [{"split": "train",
                                                                     "path": f"{RECORDS_FOLDER}/*.json"}]}],
              "dataset_info": {"config_name": "default", "features": features}}
    speat = f"[speat]({source.url})" if source.url else "speat"
    body = readme if readme is not None else _DATASET_CARD_BODY.format(repo_id=repo_id, speat=speat)
    return set_yaml_keys(body, values)


def _exists(client: HubClient, repo_id: str) -> bool:
    from speat_metric.hub.hub import HubError

    try:
        client.head(repo_id, repo_type="dataset")
    except HubError:
        return False
    return True


def _remote_is_newer(client: HubClient, repo_id: str, path: str, head: str, record: EvaluationRecord) -> bool:
    text = client.read_text(repo_id, path, revision=head, repo_type="dataset")
    try:
        return EvaluationRecord.from_json(text).created > record.created if text else False
    except (ValueError, json.JSONDecodeError):
        return False  # a damaged file: replace it
