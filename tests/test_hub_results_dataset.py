"""speat_metric.hub.results_dataset: push-results merges records into a Hub dataset that datasets.load_dataset reads."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta

import pytest
from http_servers import HubServer
from hub_testing import hub_env, run_python, run_speat, write_tone_test

from speat_metric.evaluation import EvaluationSettings, evaluate_models
from speat_metric.hub.results_dataset import dataset_path, push_results

TOKEN = "hf_resultsSECRET777"
REPO = "lab/speat-results"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Real records: two classical features on a small custom test."""
    folder = tmp_path_factory.mktemp("dataset")
    settings = EvaluationSettings(tests=(str(write_tone_test(folder / "tones")),), num_permutations=200,
                                  progress=False, cache_dir=folder / "cache")
    return evaluate_models(["mfcc", "stft"], settings)


def later(record, *, shift: float, hours: int = 1):
    created = (datetime.fromisoformat(record.created) + timedelta(hours=hours)).isoformat(timespec="seconds")
    return record.replace(created=created, speat=record.speat.replace(effect_size=record.speat.effect_size + shift))


def test_pushing_twice_merges_keeps_others_records_and_load_dataset_reads_one_row_each(tmp_path, records):
    mfcc, stft = records
    other = mfcc.replace(model=dataclasses.replace(mfcc.model, name="someone/else", revision="e" * 40))
    with HubServer(tokens={TOKEN: "lab"}) as server:
        env = hub_env(server, tmp_path, HF_TOKEN=TOKEN)
        for record in (mfcc, stft):
            record.save(tmp_path / "first")
        first = run_speat("hub", "push-results", str(tmp_path / "first"), "--repo", REPO, env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert f"{REPO}: 2 added, 0 updated, 0 unchanged; commit" in first.stdout and TOKEN not in first.stdout
        # the owner edits the card and someone else adds a record
        card = server.files(REPO, repo_type="dataset")["README.md"].decode()
        card = card.replace("---\n", "---\nlicense: cc-by-4.0\n", 1) + "\nOwner's notes.\n"
        server.commit(REPO, {"README.md": card.encode(), dataset_path(other): (other.to_json() + "\n").encode()},
                      repo_type="dataset", message="owner edit")

        newer_stft, renamed = later(stft, shift=0.5), mfcc.replace(test="tones-2")
        second = push_results([mfcc, newer_stft, renamed], REPO, token=TOKEN, endpoint=server.url)
        assert (second.added, second.updated, second.unchanged, second.kept) == (1, 1, 1, 0) and second.commit
        older = push_results([stft], REPO, token=TOKEN, endpoint=server.url)  # an older run of a key: not pushed
        assert (older.kept, older.commit) == (1, None)
        again = push_results([mfcc, newer_stft, renamed], REPO, token=TOKEN, endpoint=server.url)
        assert (again.unchanged, again.commit) == (3, None)

        files = server.files(REPO, repo_type="dataset")
        assert sorted(path for path in files if path.startswith("records/")) == sorted(
            dataset_path(record) for record in (mfcc, stft, renamed, other))
        readme = files["README.md"].decode()
        assert "license: cc-by-4.0" in readme and readme.endswith("Owner's notes.\n") and "records/*.json" in readme

        code = ("import datasets, json\n"
                f"rows = datasets.load_dataset({REPO!r}, split='train')\n"
                "print(json.dumps([[row['model']['name'], row['test'], row['speat']['effect_size'],\n"
                "                   row['model']['settings'].get('function'),\n"
                "                   row['association_scores']['X'][0]['id']] for row in rows]))\n")
        loaded = run_python(code, env=env, cwd=tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        rows = sorted(map(tuple, json.loads(loaded.stdout.strip().splitlines()[-1])))
        expected = sorted((record.model.name, record.test, record.speat.effect_size,
                           record.model.settings.get("function"), record.association_scores["X"][0]["id"])
                          for record in (mfcc, newer_stft, renamed, other))
        assert [row[:2] + row[3:] for row in rows] == [row[:2] + row[3:] for row in expected]
        # datasets re-encodes rows with Json fields at 10 significant digits; the files hold the exact values
        assert [row[2] for row in rows] == pytest.approx([row[2] for row in expected], rel=1e-9)


def test_a_record_the_dataset_cannot_hold_is_refused_before_any_push(records):
    huge_seed = records[0].replace(speat=records[0].speat.replace(seed=2**70))
    with HubServer() as server:
        with pytest.raises(ValueError, match=r"records/mfcc__none__tones__mean-mean\.json \(mfcc, tones\) does not "
                                             "fit the results dataset's types"):
            push_results([huge_seed], REPO, endpoint=server.url)
        assert server.repos == {}
        with pytest.raises(ValueError, match="no evaluation records"):
            push_results([], REPO, endpoint=server.url)


def test_dry_run_counts_without_creating_anything(records):
    with HubServer() as server:
        outcome = push_results(records, REPO, dry_run=True, endpoint=server.url)
        assert (outcome.added, outcome.commit) == (2, None) and server.repos == {}
