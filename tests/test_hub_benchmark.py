"""speat_metric.hub.benchmark and the stimulus fingerprints, on the test Hub: the benchmark is published as the Hub
expects one, results attach to it (task ids checked against its eval.yaml with huggingface_hub's own parser), no
result names a repository that does not exist, and audio that differs from the benchmark's is named and labelled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from http_servers import HubServer
from hub_testing import hub_env, publish_tiny_model, run_speat
from huggingface_hub import parse_eval_result_entries

from speat_metric.hub.benchmark import read_tasks
from speat_metric.results import load_records
from speat_metric.stimuli import speat_tests
from speat_metric.stimuli.download import file_sha256
from speat_metric.stimuli.fingerprints import stimulus_fingerprint

pytestmark = pytest.mark.slow

TOKEN = "hf_benchmarkTOKEN0123456789"
BENCHMARK = "lab/speat-benchmark"
CHANGED = "saa/english102"  # a male speaker of the gender test


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory, write_stimuli) -> Path:
    """A local copy of the study's audio (distinct tones per clip), in the cache layout."""
    root = tmp_path_factory.mktemp("stimuli") / "copy"
    write_stimuli(root, {stimulus_id for spec in speat_tests().values() for stimulus_id in spec.stimulus_ids})
    return root


@pytest.fixture(scope="module")
def hub():
    with HubServer(tokens={TOKEN: "lab"}) as server:
        yield server


@pytest.fixture(scope="module")
def env(hub, tmp_path_factory) -> dict[str, str]:
    return hub_env(hub, tmp_path_factory.mktemp("env"), HF_TOKEN=TOKEN)


@pytest.fixture(scope="module")
def benchmark(hub, env, stimuli, tmp_path_factory) -> str:
    published = run_speat("hub", "publish-benchmark", "--repo", BENCHMARK, "--stimuli", str(stimuli), "--no-progress",
                          env=env, cwd=tmp_path_factory.mktemp("publish"))
    assert published.returncode == 0, published.stderr[-3000:]
    assert f"{BENCHMARK}: committed" in published.stdout
    return hub.repos[("dataset", BENCHMARK)].branches["main"]


def test_the_benchmark_repository_is_what_the_hub_reads(hub, env, benchmark, stimuli, tmp_path):
    files = {path: content.decode() for path, content in hub.files(BENCHMARK, repo_type="dataset").items()}
    evaluation = yaml.safe_load(files["eval.yaml"])
    assert read_tasks(files["eval.yaml"], repo_id=BENCHMARK) == ("gender", "age", "native")
    assert evaluation["evaluation_framework"] == "speat" and evaluation["name"]
    assert "0 means no measured association" in evaluation["description"] and "Positive d" in evaluation["description"]
    assert all(task["config"] == task["id"] and task["split"] == "test" for task in evaluation["tasks"])
    card = yaml.safe_load(files["README.md"].split("---")[1])
    assert [config["config_name"] for config in card["configs"]] == ["gender", "age", "native"]
    for name, spec in speat_tests().items():
        rows = [json.loads(line) for line in files[f"data/{name}.jsonl"].splitlines()]
        assert [row["stimulus_id"] for row in rows] == list(spec.stimulus_ids) and "audio" not in rows[0]
        assert {row["stimulus_id"]: row["sha256"] for row in rows} == {
            stimulus_id: json.loads(files["fingerprints.json"])["clips"][stimulus_id] for stimulus_id in
            spec.stimulus_ids}
    reference = json.loads(files["fingerprints.json"])
    gender = [json.loads(line) for line in files["data/gender.jsonl"].splitlines()]
    expected = stimulus_fingerprint({role: [row["sha256"] for row in gender if row["role"] == role] for role in "XYAB"})
    assert reference["tests"]["gender"] == expected["test"]
    path = next(stimuli.rglob("english102.mp3"))
    assert reference["clips"][CHANGED] == file_sha256(path)  # the bytes read when publishing
    again = run_speat("hub", "publish-benchmark", "--repo", BENCHMARK, "--stimuli", str(stimuli), "--no-progress",
                      env=env, cwd=tmp_path)
    assert f"{BENCHMARK}: unchanged" in again.stdout and hub.repos[("dataset", BENCHMARK)].branches["main"] == benchmark


def test_results_attach_to_the_benchmark_and_only_to_it(hub, env, benchmark, stimuli, tmp_path):
    evaluation = ("--evaluate", "--stimuli", str(stimuli), "--tests", "gender,age", "--permutations", "200",
                  "--no-progress")
    tasks = read_tasks(hub.files(BENCHMARK, repo_type="dataset")["eval.yaml"].decode(), repo_id=BENCHMARK)
    for model in ("lab/tiny-one", "lab/tiny-two"):
        publish_tiny_model(hub, model, kind="wav2vec2" if model.endswith("one") else "hubert")
        done = run_speat("hub", "annotate", model, *evaluation, "--benchmark", BENCHMARK, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "no --benchmark" not in done.stderr
        files = hub.files(model, revision="refs/pr/1")
        entries = parse_eval_result_entries(yaml.safe_load(files[".eval_results/speat.yaml"]))
        assert [entry.task_id for entry in entries] == ["gender", "age"]
        sizes = {"gender": "n 60/60", "age": "n 58/58"}
        for entry in entries:
            assert entry.dataset_id == BENCHMARK and entry.task_id in tasks and entry.dataset_revision == benchmark
            assert "audio fingerprint " in entry.notes and "p = " in entry.notes and sizes[entry.task_id] in entry.notes
        index = yaml.safe_load(files["README.md"].decode().split("---")[1])["model-index"][0]["results"]
        ours = [result for result in index if result["task"]["type"] == "social-bias"]
        assert {result["dataset"]["type"] for result in ours} == {BENCHMARK}
        assert all(isinstance(value, str) for result in ours for value in result["dataset"]["args"].values())
        assert all(isinstance(value, str) for result in ours for metric in result["metrics"]
                   for value in (metric.get("args") or {}).values())

    publish_tiny_model(hub, "lab/tiny-three")
    without = run_speat("hub", "annotate", "lab/tiny-three", *evaluation, env=env, cwd=tmp_path)
    assert without.returncode == 0, without.stderr[-3000:]
    assert without.stderr.count("no --benchmark") == 1
    files = hub.files("lab/tiny-three", revision="refs/pr/1")
    assert ".eval_results/speat.yaml" not in files
    index = yaml.safe_load(files["README.md"].decode().split("---")[1])["model-index"][0]["results"]
    assert {result["dataset"]["type"] for result in index if result["task"]["type"] == "social-bias"} == {"gender",
                                                                                                         "age"}


def test_no_result_names_a_repository_the_hub_does_not_have(hub, env, benchmark, stimuli, tmp_path):
    """Every repository id a card or a results file of ours names exists on the Hub it was pushed to."""
    publish_tiny_model(hub, "lab/tiny-four")
    assert run_speat("hub", "annotate", "lab/tiny-four", "--evaluate", "--stimuli", str(stimuli), "--tests", "native",
                     "--permutations", "200", "--no-progress", "--benchmark", BENCHMARK, "--out",
                     str(tmp_path / "records"), env=env, cwd=tmp_path).returncode == 0
    assert run_speat("hub", "push-results", str(tmp_path / "records"), "--repo", "lab/speat-results", env=env,
                     cwd=tmp_path).returncode == 0
    named = set()
    for files in (hub.files("lab/tiny-four", revision="refs/pr/1"), hub.files("lab/speat-results",
                                                                              repo_type="dataset")):
        for path, content in files.items():
            if path.endswith((".md", ".yaml", ".json")):
                text = content.decode()
                named |= {value for value in _repo_ids(text)}
    existing = {repo_id for _, repo_id in hub.repos}
    assert BENCHMARK in named and named <= existing, named - existing


def _repo_ids(text: str) -> set[str]:
    """Values of the keys that name a Hub repository: dataset ids and types, and benchmark names."""
    import re

    return set(re.findall(r"(?:^|\s)(?:id|type|benchmark|repo_id):\s*['\"]?([\w.-]+/[\w.-]+)", text, re.MULTILINE)
               ) | set(re.findall(r'"(?:benchmark|repo_id)": "([\w.-]+/[\w.-]+)"', text))


def test_audio_that_differs_from_the_benchmark_is_named_and_labelled(hub, env, benchmark, stimuli, tmp_path,
                                                                    stimulus_audio):
    changed = shutil.copytree(stimuli, tmp_path / "changed")
    next(changed.rglob("english102.mp3")).write_bytes(stimulus_audio("saa/a-replaced-recording"))
    runs = {}
    for name, folder in (("same", stimuli), ("changed", changed)):
        done = run_speat("evaluate", "mfcc", "--stimuli", str(folder), "--tests", "gender", "--permutations", "200",
                         "--no-progress", "--benchmark", BENCHMARK, "--out", str(tmp_path / name), env=env,
                         cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = (load_records(tmp_path / name)[0], done)
    same, changed_record = runs["same"][0], runs["changed"][0]
    assert same.stimulus_fingerprint != changed_record.stimulus_fingerprint
    assert same.fingerprint["reference"] == {"benchmark": BENCHMARK, "revision": benchmark,
                                             "test": same.stimulus_fingerprint, "differing": []}
    assert changed_record.fingerprint["reference"]["differing"] == [CHANGED]
    assert "stimuli-differ" in changed_record.labels and "stimuli-differ" not in same.labels
    warning = runs["changed"][1].stderr
    assert f"1 clip(s) differ from the audio of the benchmark {BENCHMARK} ({CHANGED})" in warning
    assert "stimuli-differ:" in runs["changed"][1].stdout  # the table's footnote
    y_before, y_after = same.fingerprint["clips"]["Y"], changed_record.fingerprint["clips"]["Y"]
    assert len(set(y_before) ^ set(y_after)) == 2
    assert same.fingerprint["clips"]["X"] == changed_record.fingerprint["clips"]["X"]


def test_a_benchmark_that_is_not_one_is_refused_before_any_work(hub, env, tmp_path):
    hub.create_repo("lab/not-a-benchmark", repo_type="dataset")
    for name in ("lab/not-a-benchmark", "lab/absent"):
        done = run_speat("evaluate", "mfcc", "--tests", "gender", "--benchmark", name, "--out",
                         str(tmp_path / "out"), env=env, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert name in done.stderr and not (tmp_path / "out").exists()
    bad = run_speat("evaluate", "mfcc", "--benchmark", "nope", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "--benchmark 'nope' is not a Hub repository id" in bad.stderr


def test_stimuli_download_names_the_clips_that_differ_from_the_benchmark(hub, env, benchmark, static_server,
                                                                          stimulus_audio, tmp_path):
    from test_stimuli_cli import serve

    serve(static_server, stimulus_audio, speat_tests()["gender"].stimulus_ids)
    static_server.add_file(f"/soundtracks/{CHANGED.split('/')[1]}.mp3", stimulus_audio("saa/a-replaced-recording"))
    command = ("stimuli", "download", "--tests", "gender", "--cache-dir", str(tmp_path / "cache"), "--no-progress",
               "--base-url-saa", f"{static_server.url}/soundtracks", "--base-url-zenodo", static_server.url,
               "--benchmark", BENCHMARK)
    done = run_speat(*command, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"1 clip(s) differ from the audio of the benchmark {BENCHMARK}: {CHANGED};" in done.stdout
    assert "all 240 stimuli are in the cache" in done.stdout
    static_server.add_file(f"/soundtracks/{CHANGED.split('/')[1]}.mp3", stimulus_audio(CHANGED))  # restored
    (tmp_path / "cache" / "saa" / "english102.mp3").unlink()
    again = run_speat(*command, env={**env, "SPEAT_BENCHMARK": BENCHMARK}, cwd=tmp_path)
    assert f"every clip in the cache has the bytes the benchmark {BENCHMARK} lists" in again.stdout


def test_a_benchmark_of_further_published_tests_has_their_tasks(hub, env, stimuli, tmp_path):
    """--tests takes any of the 12 published tests: a licensed one read from the user's copy (<--stimuli>/<corpus>/)."""
    from speat_metric.stimuli.battery import battery_clips, get_speat_test

    copy = tmp_path / "copy"
    shutil.copytree(stimuli, copy)
    spec = get_speat_test("accent-pantos-perkins")
    for number, stimulus_id in enumerate(spec.x.stimulus_ids + spec.y.stimulus_ids):
        path = copy / "pantos_perkins" / battery_clips()[stimulus_id].path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((copy / "mess" / f"{spec.a.stimulus_ids[number][5:]}_SCR.wav").read_bytes())
    repo = "lab/speat-battery"
    done = run_speat("hub", "publish-benchmark", "--repo", repo, "--stimuli", str(copy), "--tests",
                     "gender,accent-pantos-perkins", "--no-progress", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    files = hub.files(repo, repo_type="dataset")
    assert read_tasks(files["eval.yaml"].decode(), repo_id=repo) == ("gender", "accent-pantos-perkins")
    rows = [json.loads(line) for line in files["data/accent-pantos-perkins.jsonl"].decode().splitlines()]
    assert [row["stimulus_id"] for row in rows] == list(spec.stimulus_ids)
    unknown = run_speat("hub", "publish-benchmark", "--repo", repo, "--stimuli", str(copy), "--tests", "accent",
                        env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown SpEAT test 'accent'" in unknown.stderr
    assert unknown.stderr.count("\n") == 1
