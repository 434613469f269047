"""speat_metric.space.sources: reading records from directories and from the Hub dataset of `speat hub push-results`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_space_fixtures import FOREIGN, bundled, of, version_1, write_results_dir

from speat_metric.space.sources import (
    DirectorySource,
    HubDatasetSource,
    bundled_records_dir,
    choose_source,
    read_record_files,
)


def test_bad_and_foreign_files_are_skipped_with_a_warning_naming_each(tmp_path):
    root = write_results_dir(tmp_path / "results")
    (root / ".cache").mkdir()
    (root / ".cache" / "hidden.json").write_text("not even json")
    (root / "list_of_numbers.json").write_text("[1, 2]")
    records, warnings = read_record_files(root)
    assert len(records) == len(bundled()) + len(list((root / "compressed").glob("*.json"))) + 1
    named = {warning.split(" skipped")[0]: warning for warning in warnings}
    assert set(named) == {"foreign_results.json", "broken.json", "from_the_future.json", "list_of_numbers.json"}
    assert "upgrade speat" in named["from_the_future.json"]
    assert "expected a JSON object" in named["list_of_numbers.json"]
    assert all("not a speat evaluation record" in warning for warning in warnings)


def test_version_1_records_load_without_per_stimulus_scores(tmp_path):
    (tmp_path / "v1.json").write_text(json.dumps(version_1(of(bundled(), "mfcc", "gender"))))
    [record], warnings = read_record_files(tmp_path)
    assert not warnings
    assert record.association_scores is None and record.profile == "hf" and record.compression is None


def test_a_json_list_of_records_is_read_as_records(tmp_path):
    records = bundled()[:3]
    (tmp_path / "all.json").write_text(json.dumps([record.to_dict() for record in records]))
    loaded, warnings = read_record_files(tmp_path)
    assert not warnings and [record.to_dict() for record in loaded] == [record.to_dict() for record in records]


def test_a_missing_directory_is_a_warning_not_a_crash(tmp_path):
    loaded = DirectorySource(tmp_path / "gone").load()
    assert loaded.records == () and "does not exist" in loaded.warnings[0]


def test_choose_source_checks_its_arguments_first(tmp_path):
    with pytest.raises(ValueError, match="either a results directory or a Hub dataset repository"):
        choose_source(results=tmp_path, repo="org/name")
    with pytest.raises(ValueError, match="must look like ORG/NAME, got 'justaname'"):
        choose_source(repo="justaname")
    with pytest.raises(FileNotFoundError, match="results directory .*missing does not exist"):
        choose_source(results=tmp_path / "missing")
    assert choose_source().path == bundled_records_dir()
    assert isinstance(choose_source(repo="org/name", revision="v1"), HubDatasetSource)


def test_bundled_records_are_synthetic_portable_and_feed_every_bundled_view():
    records = bundled(compressed=True)
    assert all("synthetic-stimuli" in record.labels and record.stimuli["synthetic"] for record in records)
    # the cosine matrix is base64 text, which may hold "/": paths are looked for in everything else
    text = "\n".join(record.replace(cosines=None).to_json() for record in records)
    assert all(record.cosines for record in records)
    assert "/tmp/" not in text and str(Path.cwd()) not in text and '"/' not in text
    assert len({record.checkpoint["step"] for record in records if record.checkpoint}) >= 3
    assert len({record.pooling["layer"] for record in records if record.model.name == "random:melhubert-small"}) >= 3
    assert all(record.association_scores for record in records)
    assert all(record.fingerprint and len(record.fingerprint["clips"]["X"]) == record.speat.n_x for record in records)
    # The bundle ships inside the wheel and the Space: its compression runs, per-stimulus scores and audio fingerprints
    # (48 SHA-256s a record, 0.4 MB in all; the wheel grew from 3.17 to 3.44 MB) and, since schema 4, each test's
    # cosine matrix (float32 in base64, about 4.5 KB a record) fit in 1.5 MB.
    assert sum(path.stat().st_size for path in bundled_records_dir().glob("*.json")) < 1_500_000


def _hub_files(records, folder: str = "") -> dict[str, bytes]:
    return {f"{folder}{record.file_name}": record.to_json(indent=2).encode() for record in records}


def test_hub_dataset_records_at_the_root_and_in_folders_with_refresh(hub_server, tmp_path):
    records = bundled()
    hub_server.create_repo("speat/results", repo_type="dataset")
    hub_server.commit("speat/results", {**_hub_files(records[:2]), **_hub_files(records[2:4], "records/"),
                                        "records/foreign.json": json.dumps(FOREIGN).encode(),
                                        "README.md": b"---\nlicense: apache-2.0\n---\n"}, repo_type="dataset")
    source = HubDatasetSource("speat/results", endpoint=hub_server.url, cache_dir=tmp_path / "cache")
    loaded = source.load()
    assert sorted(record.to_json() for record in loaded.records) == sorted(record.to_json() for record in records[:4])
    [warning] = loaded.warnings
    assert warning.startswith("records/foreign.json skipped: not a speat evaluation record")
    assert loaded.origin == "Hub dataset speat/results"

    hub_server.commit("speat/results", _hub_files(records[4:5], "records/more/"), repo_type="dataset")
    hub_server.clear_requests()
    again = source.load()
    assert len(again.records) == 5 and records[4].to_json() in {record.to_json() for record in again.records}
    downloads = hub_server.count("GET", prefix="/datasets/speat/results/resolve/")
    assert downloads == 1, "a refresh fetches only the new file"


def test_hub_dataset_that_cannot_be_read_is_a_warning(hub_server, tmp_path):
    loaded = HubDatasetSource("speat/missing", endpoint=hub_server.url, cache_dir=tmp_path).load()
    assert loaded.records == ()
    assert "could not read Hub dataset speat/missing" in loaded.warnings[0]
    assert "press Refresh to try again" in loaded.warnings[0]
