"""A new user's first hour, round two (issue 21): each thing that cost them time, as they meet it, from a directory of
their own with the ``speat`` command: set-up's last words, errors found before any work, files others can read,
Ctrl-C, near-miss names and options, broken clips, output that can be redirected, and progress bars that say what
they count."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from environments import fresh_environment
from test_pruning_cli import TINY
from tiny_models import save_prunable_model as save_model
from tiny_models import save_tiny_model, write_audio_folder, write_tone_test

from speat_metric.results import load_records

CHECKOUT = Path(__file__).resolve().parent.parent
SPEAT = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"


def speat(*arguments: str, cwd: Path, umask: int | None = None, **env: str) -> subprocess.CompletedProcess:
    """``speat ARGUMENTS`` typed in `cwd` (under `umask` when given), offline unless told otherwise."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf"), "SPEAT_CACHE": str(cwd / "cache"),
                   **env}
    return subprocess.run([SPEAT, *arguments], cwd=cwd, capture_output=True, text=True, timeout=600, env=environment,
                          preexec_fn=None if umask is None else lambda: os.umask(umask))


def one_error_line(completed: subprocess.CompletedProcess) -> str:
    """The only line of stderr, which must be an error of ``speat``."""
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    return lines[0]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# 1. set-up ends saying how to get `speat` on the PATH ------------------------------------------------------------
@pytest.mark.slow
def test_setup_ends_saying_how_to_put_speat_on_the_path(tmp_path):
    checkout = tmp_path / "speat"
    for name in subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=CHECKOUT,
                               capture_output=True, text=True, check=True).stdout.splitlines():  # as a clone has them
        if (CHECKOUT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CHECKOUT / name, checkout / name)
    # torch and the rest are borrowed from the test environment, so pip resolves offline (no index, no isolation)
    venv = fresh_environment(checkout / ".venv")
    environment = {**venv.env(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", HF_HUB_OFFLINE="1",
                              HF_HOME=str(tmp_path / "hf"), SPEAT_CACHE=str(tmp_path / "cache"),
                              SPEAT_TORCH_CPU_INDEX=closed_port_url()),
                   "PATH": os.environ["PATH"].replace(os.path.dirname(sys.executable) + os.pathsep, "")}
    environment.pop("VIRTUAL_ENV")  # a new user's shell: no environment active, speat not on the PATH
    completed = subprocess.run(["bash", "scripts/setup.sh"], cwd=checkout, capture_output=True, text=True,
                               timeout=900, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    closing = completed.stderr.strip().splitlines()[-4:]
    assert closing[0].startswith("setup: done.") and "source .venv/bin/activate" in closing[1], closing
    assert "15 results written to results/" in completed.stderr
    activated = subprocess.run(["bash", "-c", "source .venv/bin/activate && speat --version"], cwd=checkout,
                               capture_output=True, text=True, timeout=120, env=environment)
    assert activated.returncode == 0 and activated.stdout.startswith("speat "), activated.stderr
    quick_start = (checkout / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "source .venv/bin/activate" in quick_start and '-m "not slow"' in quick_start
    assert "minutes" in quick_start and "2-core" in quick_start


# 2. --layer is checked before the first forward pass -------------------------------------------------------------
def test_a_layer_the_model_lacks_is_refused_before_the_model_runs(tmp_path):
    save_tiny_model("hubert", tmp_path / "model")  # 2 transformer layers: hidden states 0..2
    line = one_error_line(speat("evaluate", "./model", "--tests", "gender", "--pooling", "layer", "--layer", "9",
                                cwd=tmp_path))
    assert line == ("speat evaluate: error: --layer 9: ./model has 3 layers (0..2, 0 being the input embedding "
                    "layer; negative counts from the end)")
    random = speat("evaluate", "random:melhubert-small", "--tests", "gender", "--pooling", "layer", "--layer", "-9",
                   cwd=tmp_path)  # its layer count is known once loaded, still before any audio goes through it
    assert random.returncode == 2 and "embedding with" not in random.stderr
    last = random.stderr.strip().splitlines()[-1]
    assert last.startswith("speat evaluate: error: --layer -9: random:melhubert-small has 4 layers")


# 3. a custom test that needs the study's attribute clips, on the demo set -----------------------------------------
def test_a_custom_test_without_attributes_on_the_demo_set_says_what_it_needs_in_one_line(tmp_path):
    write_tone_test(tmp_path / "mine")
    definition = json.loads((tmp_path / "mine" / "tone.json").read_text())
    (tmp_path / "mine" / "targets.json").write_text(json.dumps({key: definition[key] for key in ("name", "x", "y")}))
    line = one_error_line(speat("evaluate", "mfcc", "--tests", "mine/targets.json", cwd=tmp_path))
    assert "mine/targets.json" in line and "Morgan Emotional Speech Set" in line and "--stimuli speat" in line
    assert "allow_missing" not in line
    download = speat("stimuli", "download", "--tests", "age", "--retries", "1", "--no-progress", "--base-url-saa",
                     closed_port_url(), "--base-url-zenodo", closed_port_url(), cwd=tmp_path)
    assert download.returncode == 1
    assert "--allow-missing" in download.stdout.splitlines()[-1] and "allow_missing=True" not in download.stdout


# 4. files speat writes honour the umask ---------------------------------------------------------------------------
@pytest.mark.parametrize("umask,mode", [(0o002, 0o664), (0o077, 0o600)])
def test_written_files_have_the_mode_the_umask_gives(tmp_path, umask, mode):
    completed = speat("evaluate", "stft", "--tests", "gender", "--permutations", "50", "--no-progress", cwd=tmp_path,
                      umask=umask)
    assert completed.returncode == 0, completed.stderr
    written = [*(tmp_path / "results").iterdir(), *(tmp_path / "cache" / "embeddings").rglob("*.npz")]
    assert len(written) == 49  # the record and the 48 clips' embeddings
    assert {oct(path.stat().st_mode & 0o777) for path in written} == {oct(mode)}


# 5. Ctrl-C is one line, and says how to resume ---------------------------------------------------------------------
def interrupt(command: list[str], cwd: Path, *, once: Path | str) -> subprocess.CompletedProcess:
    """Start `command`, press Ctrl-C (SIGINT) once the file `once` exists or its stderr shows that text, and wait."""
    log = cwd / "stderr.log"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf"), "SPEAT_CACHE": str(cwd / "cache")}
    with open(log, "w") as stderr:  # Ctrl-C acts as in a terminal even where the test runner ignores SIGINT
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr, env=environment,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (once.exists() if isinstance(once, Path) else once in log.read_text()):
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, "", log.read_text())


def test_ctrl_c_during_an_evaluation_is_one_line(tmp_path):
    interrupted = interrupt([SPEAT, "evaluate", "random:melhubert-base", "--tests", "gender"], tmp_path,
                            once="embedding with random:melhubert-base")
    assert interrupted.returncode == 130 and "Traceback" not in interrupted.stderr
    assert interrupted.stderr.strip().splitlines()[-1] == (
        "speat evaluate: interrupted; the models finished before it have their records in --out; run the command "
        "again to finish (their embeddings come from the cache)")


@pytest.mark.slow
def test_ctrl_c_during_pruning_says_how_to_resume_and_resuming_finishes(tmp_path):
    (tmp_path / "audio").mkdir()
    write_audio_folder(tmp_path / "audio")
    write_tone_test(tmp_path / "stimuli")
    save_model("wav2vec2", tmp_path / "model")
    (tmp_path / "tiny.yaml").write_text(TINY)
    command = [SPEAT, "prune", "heads", "./model", "--objective", "native", "--data", "audio", "--config", "tiny.yaml",
               "--steps-per-prune", "3", "--warmup-steps", "2", "--min-heads", "4", "--tests", "stimuli/tone.json",
               "--permutations", "20", "--out", "run"]
    second_pruning_step = tmp_path / "run" / "state" / "step-000000005" / "trainer_state.json"
    interrupted = interrupt(command, tmp_path, once=second_pruning_step)
    assert interrupted.returncode == 130 and "Traceback" not in interrupted.stderr
    assert interrupted.stderr.strip().splitlines()[-1] == (
        "speat prune heads: interrupted; run the same command with --resume to continue from the last saved state")
    assert not list((tmp_path / "run").rglob("*.partial")), "no half-written file is left behind"
    resumed = speat(*command[1:], "--resume", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint-8" / "model.safetensors").is_file()


# 6. near-miss names and options ------------------------------------------------------------------------------------
def test_a_misspelt_built_in_model_is_suggested_before_any_request(tmp_path, hub_server):
    line = one_error_line(speat("evaluate", "mfc", cwd=tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=hub_server.url))
    assert line == ("speat evaluate: error: 'mfc' is not a model speat knows, nor a local directory; did you mean "
                    "'mfcc'? (a Hub model is named OWNER/NAME)")
    assert hub_server.count() == 0


def test_abbreviated_options_are_refused_with_the_option_meant(tmp_path):
    completed = speat("evaluate", "mfcc", "--test", "gender", "--permutation", "10", cwd=tmp_path)
    assert completed.returncode == 2 and not (tmp_path / "results").exists()
    assert completed.stderr.startswith("usage: speat evaluate ")
    assert completed.stderr.strip().splitlines()[-1] == ("speat evaluate: error: unrecognized arguments: --test gender "
                                                          "--permutation 10 (did you mean --tests, --permutations?)")


@pytest.mark.parametrize("arguments", [("evaluate", "mfcc", "--tests", "age", "--permutations", "20", "--no-progress"),
                                       ("stimuli", "list")])
def test_verbose_works_after_the_command_as_before_it(tmp_path, arguments):
    after = speat(*arguments, "-v", cwd=tmp_path)
    before = speat("-v", *arguments, cwd=tmp_path)
    assert after.returncode == before.returncode == 0, after.stderr
    if arguments[0] == "evaluate":  # the INFO lines of our package, which only -v shows
        assert "clips from the cache" in after.stderr and "clips from the cache" in before.stderr


# 7. a broken clip is found before the model loads ---------------------------------------------------------------
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_broken_clip_is_refused_before_the_model_is_fetched_or_skipped_with_allow_missing(tmp_path, hub_server,
                                                                                             damage):
    model = save_tiny_model("wav2vec2", tmp_path / "model")
    hub_server.create_repo("speat-tester/tiny")
    hub_server.commit("speat-tester/tiny", {path.name: path.read_bytes() for path in model.iterdir()})
    write_tone_test(tmp_path / "mine")
    clip = tmp_path / "mine" / "x" / "0.wav"
    whole = clip.read_bytes()
    clip.write_bytes(b"" if damage == "empty" else whole[: len(whole) // 2])
    hub = dict(HF_HUB_OFFLINE="0", HF_ENDPOINT=hub_server.url)
    line = one_error_line(speat("evaluate", "speat-tester/tiny", "--tests", "mine/tone.json", cwd=tmp_path, **hub))
    problem = "the file is empty (0 bytes)" if damage == "empty" else "the file is truncated: its data chunk declares"
    assert line.startswith(f"speat evaluate: error: custom/x/0 ({clip}): {problem}")
    assert line.endswith("(or add --allow-missing to go on without it)")
    assert not any(request.path.endswith("model.safetensors") for request in hub_server.requests)
    skipped = speat("evaluate", "speat-tester/tiny", "--tests", "mine/tone.json", "--allow-missing", "--permutations",
                    "20", "--no-progress", cwd=tmp_path, **hub)
    assert skipped.returncode == 0, skipped.stderr
    record, = load_records(tmp_path / "results")
    assert record.speat.n_x == 3
    assert record.stimuli["dropped_reasons"]["custom/x/0"].startswith(f"unreadable: {problem}")


# 8. stdout holds the format asked for --------------------------------------------------------------------------
def test_markdown_and_json_go_to_stdout_alone_and_the_status_to_stderr(tmp_path):
    markdown = speat("evaluate", "mfcc", "--tests", "gender,age", "--permutations", "50", "--format", "markdown",
                     "--no-progress", cwd=tmp_path)
    assert markdown.returncode == 0, markdown.stderr
    lines = [line for line in markdown.stdout.splitlines() if line]
    assert lines[0].startswith("**SpEAT on the embedded SYNTHETIC") and lines[0].endswith("**")
    assert all(line.startswith(("|", "- ")) for line in lines[1:]), lines
    assert "written to" not in markdown.stdout and "2 results written to results/" in markdown.stderr
    as_json = speat("evaluate", "mfcc", "--tests", "gender", "--permutations", "50", "--format", "json",
                    "--no-progress", cwd=tmp_path)
    assert json.loads(as_json.stdout)[0]["test"] == "gender" and "1 result written to" in as_json.stderr


# 9. progress bars say what they count, and only ours show ---------------------------------------------------------
def test_progress_bars_name_the_model_and_the_exact_partitions_and_no_library_bar_shows(tmp_path):
    save_tiny_model("wav2vec2", tmp_path / "model")
    write_tone_test(tmp_path / "mine")  # 4 + 4 targets: 70 partitions, all of them tested
    completed = speat("evaluate", str(tmp_path / "model"), "--tests", "mine/tone.json", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "SpEAT of model (exact: all 70 partitions)" in completed.stderr
    assert "embedding with model:" in completed.stderr and str(tmp_path) not in completed.stderr
    assert "Loading weights" not in completed.stderr and "1,000,000" not in completed.stderr


# 10 is in test_setup_script.py ("would install"); 11 in test_distill_runs.py (the Space shows no machine path).


def test_a_permutation_bar_counts_a_sampled_test_as_its_budget():
    from types import SimpleNamespace as Stimulus

    from speat_metric.pipeline import permutation_bar_label

    rows = [Stimulus(role=role) for role in ["X"] * 12 + ["Y"] * 12]  # C(24, 12) = 2,704,156 partitions > budget
    assert permutation_bar_label("/data/models/w2v", [rows], 1000) == "SpEAT of w2v (1,000 random partitions)"


# Twenty more bad inputs, across the commands: each is one line naming the value, before any work --------------------
@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's working directory: a file where a folder belongs, a tiny model, clips, custom tests, a run, results."""
    root = tmp_path_factory.mktemp("desk")
    (root / "afile").write_text("not a folder")
    (root / "notes.txt").write_text("mean and std, I think")
    save_tiny_model("hubert", root / "model")
    write_tone_test(root / "mine")
    tone = json.loads((root / "mine" / "tone.json").read_text())
    for name, change in (("folder-in-x", {"x": ["x", *tone["x"][1:]]}), ("name-list", {"name": ["accent"]}),
                         ("pair-list", {"pairs": [[["x/0.wav"], "y/0.wav"]]})):
        (root / "mine" / f"{name}.json").write_text(json.dumps({**tone, **change}))
    (root / "run").mkdir()
    (root / "run" / "config.yaml").write_text("method: heads\n")  # a run too short to have saved a state
    (root / "state-dir").mkdir()
    (root / "models.txt").write_text("facebook/hubert-base-ls960\n")
    made = speat("evaluate", "stft", "--tests", "gender", "--permutations", "50", "--no-progress", "--format", "json",
                 cwd=root)
    assert made.returncode == 0, made.stderr
    (root / "as-json").mkdir()
    (root / "as-json" / "all.json").write_text(made.stdout)  # `speat evaluate --format json > as-json/all.json`
    return root


BAD_INPUTS = [
    (("evaluate", "stft", "--tests", "gender", "age"), "unrecognized arguments: age (--tests takes one comma-separated "
     "list, e.g. --tests gender,age)"),
    (("evaluate", "stft", "--tests", "gender", "--cache-dir", "afile"), "--cache-dir 'afile' is a file, not a "
     "directory; give a directory for the embedding cache"),
    (("evaluate", "stft", "--tests", "gender", "--layer", "1"), "--layer 1 picks the layer of --pooling layer, but the "
     "pooling is 'mean'; add --pooling layer"),
    (("evaluate", "random:melhubert-small", "--tests", "gender", "--mean-std", "notes.txt"),
     "cannot read MelHuBERT mean/std file 'notes.txt' (not a NumPy .npy array)"),
    (("evaluate", "stft", "--tests", "mine/folder-in-x.json"), "audio file 'mine/x' is a directory, not an audio file"),
    (("evaluate", "stft", "--tests", "mine/name-list.json"), "'name' must be a string"),
    (("evaluate", "stft", "--tests", "mine/pair-list.json"), "each pair must be [X stimulus, Y stimulus] (two ids or "
     "audio paths), got [['x/0.wav'], 'y/0.wav']"),
    (("evaluate", "stft", "--tests", "gender", "--stimuli", "my-org/my-stimuli"), "could not download the stimuli from "
     "Hub dataset 'my-org/my-stimuli': HF_HUB_OFFLINE is set, and the local Hugging Face cache has no copy of it"),
    (("stimuli", "download", "--retries", "0"), "--retries must be at least 1 (the first attempt counts), got 0"),
    (("stimuli", "download", "--base-url-saa", "accent.gmu.edu/soundtracks"), "--base-url-saa "
     "'accent.gmu.edu/soundtracks' is not an http(s) URL; write it in full, e.g. https://accent.gmu.edu/soundtracks"),
    (("stimuli", "download", "--cache-dir", "afile"), "--cache-dir 'afile' is a file, not a directory"),
    (("register", "--modules-cache", "afile"), "--modules-cache 'afile' is a file, not a directory"),
    (("example", "--permutations", "-100"), "--permutations must be a whole number of at least 1, got -100"),
    (("hub", "render", "model"), "model/config.json is not a speat evaluation record: it has no schema_version"),
    (("hub", "push-results", "as-json", "--repo", "speat-results"), "--repo 'speat-results' is not a Hub repository "
     "id; use OWNER/NAME"),
    (("hub", "publish-space", "--space", "me/board", "--results-repo", "https://huggingface.co/datasets/me/results",
      "--dry-run"), "--results-repo 'https://huggingface.co/datasets/me/results' is not a Hub repository id"),
    (("hub", "publish-benchmark", "--repo", "me/speat-benchmark", "--stimuli", "mine", "--dry-run"),
     "fetch them with `speat stimuli download` and use --stimuli speat"),
    (("hub", "annotate", "./model", "--evaluate", "--dry-run"), "MODEL_ID './model' is not a Hub repository id"),
    (("hub", "annotate-many", "--models", "models.txt", "--state", "state-dir", "--stimuli", "speat"),
     "--state 'state-dir' is a directory"),
    (("prune", "heads", "./model", "--data", "mine/x", "--out", "run"), "--out run already holds a run (its "
     "config.yaml); pass --resume to continue it"),
    (("prune", "heads", "./model", "--data", "mine/x", "--out", "mine"), "--out mine is not empty (a, b, "
     "folder-in-x.json, ...) and holds no run"),
    (("distill", "./model", "--data", "mine/x", "--out", "afile/run"), "--out 'afile/run': 'afile' is a file, so the "
     "directory cannot be created"),
    (("distill", "./model", "--data", "mine/x", "--config", "studdy"), "--config studdy: no such file; did you mean "
     "'study' (the bundled settings)?"),
    (("space", "--results", "as-json/all.json"), "results directory as-json/all.json is a file, not a directory"),
    (("space", "--host", "10.255.255.1", "--port", "7913"), "cannot listen on --host 10.255.255.1 --port 7913"),
]


@pytest.mark.parametrize("arguments,message", BAD_INPUTS, ids=[" ".join(case[0][:2]) + f" {index}"
                                                               for index, case in enumerate(BAD_INPUTS)])
def test_a_bad_input_is_one_line_naming_it(desk, arguments, message):
    before = sorted(path.relative_to(desk) for path in desk.rglob("*") if "hf" not in path.parts)
    completed = speat(*arguments, cwd=desk, HF_ENDPOINT=closed_port_url())
    assert completed.returncode == 2 and "Traceback" not in completed.stderr, completed.stderr
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"speat {arguments[0]}") and message in last, completed.stderr
    if not completed.stderr.startswith("usage:"):  # argparse's own errors come with the command's usage
        assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    after = sorted(path.relative_to(desk) for path in desk.rglob("*") if "hf" not in path.parts)
    assert after == before, "nothing is written by a command that stops on bad input"


def test_the_json_a_user_redirects_into_a_folder_reads_as_records(desk):
    rendered = speat("hub", "render", "as-json", "--allow-synthetic", cwd=desk)
    assert rendered.returncode == 0, rendered.stderr
    assert "SpEAT" in rendered.stdout and "gender" in rendered.stdout


def test_a_bare_repository_name_creates_nothing_on_the_hub(desk, hub_server):
    completed = speat("hub", "push-results", "as-json", "--repo", "speat-results", cwd=desk, HF_HUB_OFFLINE="0",
                      HF_ENDPOINT=hub_server.url, HF_TOKEN="hf_anything")
    assert completed.returncode == 2 and hub_server.count() == 0
