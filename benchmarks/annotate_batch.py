"""``speat hub annotate-many`` over 20 tiny models on the Hub test server: throughput, overhead, resume time.

Twenty tiny random wav2vec 2.0 models (the tests' size) are committed as model repos, with a hand-written card,
to the Hub-compatible test server (``tests/http_servers.py``) on 127.0.0.1. Then:

1. ``annotate_many`` in this process over all 20 (demo stimuli, the three tests, ``--permutations`` as given),
   with torch forward hooks timing every forward pass of the models: models per minute, and the share of the wall
   time spent outside forward passes (audio decoding, pooling, permutation tests, model loading, the Hub requests,
   card rendering and the pull requests), split into its parts;
2. ``speat hub annotate-many`` as a subprocess over 20 fresh repos, killed (SIGKILL) once 10 are in its state file,
   then started again: the time from the restart to the first new model's start (process start-up plus the skip
   checks of the 10 done ones), and the resumed run's total.

Figures only: nothing is asserted. The machine may be shared: CPU timings are noisy.

    .venv/bin/python benchmarks/annotate_batch.py [--permutations 10000] [--models 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from http_servers import HubServer  # noqa: E402 (stdlib only: huggingface_hub must not be imported yet)

CARD = "---\nlicense: apache-2.0\ntags: [audio]\n---\n# A tiny model\n\nHand-written text.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="speat-annotate-bench-"))
    server = HubServer().start()
    os.environ.update(HF_ENDPOINT=server.url, HF_HOME=str(work / "hf"), HF_TOKEN="hf_benchmark",
                      HF_UPDATE_DOWNLOAD_COUNTS="0", SPEAT_CACHE=str(work / "cache"))
    import transformers
    from hub_testing import hub_env, publish_tiny_model  # imports transformers: after HF_ENDPOINT is set

    transformers.utils.logging.disable_progress_bar()

    try:
        models = [f"bench/tiny-{index:02d}" for index in range(args.models)]
        for index, model in enumerate(models):
            publish_tiny_model(server, model, readme=CARD, seed=index)
        in_process(models, args.permutations, work)
        fresh = [f"bench/resume-{index:02d}" for index in range(args.models)]
        for index, model in enumerate(fresh):
            publish_tiny_model(server, model, readme=CARD, seed=100 + index)
        resume(fresh, args.permutations, work, hub_env(server, work, HF_TOKEN="hf_benchmark"))
    finally:
        server.stop()


def in_process(models: list[str], permutations: int, work: Path) -> None:
    import torch
    import transformers

    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.hub.batch import annotate_many

    forward = {"seconds": 0.0, "depth": 0, "start": 0.0}

    def before(module, inputs):
        if isinstance(module, transformers.PreTrainedModel):
            if forward["depth"] == 0:
                forward["start"] = time.perf_counter()
            forward["depth"] += 1

    def after(module, inputs, output):
        if isinstance(module, transformers.PreTrainedModel):
            forward["depth"] -= 1
            if forward["depth"] == 0:
                forward["seconds"] += time.perf_counter() - forward["start"]

    parts = _timed_parts()
    settings = EvaluationSettings(num_permutations=permutations, progress=False)
    pre = torch.nn.modules.module.register_module_forward_pre_hook(before)
    post = torch.nn.modules.module.register_module_forward_hook(after)
    start = time.perf_counter()
    summary = annotate_many(models, settings, state_path=work / "state.json", allow_synthetic=True,
                            report=lambda line: None)
    elapsed = time.perf_counter() - start
    pre.remove()
    post.remove()
    done = len(summary.done)
    outside = elapsed - forward["seconds"]
    print(f"in-process annotate_many: {done}/{len(models)} models annotated ({len(summary.failed)} failed), demo "
          f"stimuli, 3 tests, {permutations:,} permutations each")
    print(f"  wall {elapsed:.1f} s = {60 * done / elapsed:.1f} models per minute")
    print(f"  forward passes {forward['seconds']:.1f} s; outside them {outside:.1f} s = {outside / elapsed:.0%} of the "
          "wall time (target: under 20%)")
    for name, seconds in parts.items():
        print(f"    {name:<34} {seconds['total']:6.1f} s  ({seconds['total'] / elapsed:.0%})")


def _timed_parts() -> dict[str, dict[str, float]]:
    """Wrap the main steps to time them (a benchmark's instrumentation: the code under test is not changed)."""
    import speat_metric.adapters as adapters
    import speat_metric.evaluation as evaluation
    import speat_metric.hub.annotate as annotate
    import speat_metric.pipeline as pipeline

    parts: dict[str, dict[str, float]] = {}

    def wrap(module, name: str, label: str) -> None:
        function = getattr(module, name)
        parts[label] = {"total": 0.0}

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                parts[label]["total"] += time.perf_counter() - start

        setattr(module, name, timed)

    wrap(adapters, "load_encoder", "model loading (incl. download)")
    wrap(pipeline, "embed_stimuli", "embedding (decode + forward + pool)")
    wrap(pipeline, "speat_test", "permutation tests and bootstrap")
    wrap(evaluation, "load_tests", "stimuli checks")
    wrap(annotate, "_find_target", "Hub look-ups (PRs, card)")
    wrap(annotate, "_push", "render, merge, validate, push")
    return parts


def resume(models: list[str], permutations: int, work: Path, env: dict[str, str]) -> None:
    (work / "models.txt").write_text("\n".join(models) + "\n")
    state = work / "resume-state.json"
    command = [str(Path(sys.executable).with_name("speat")), "hub", "annotate-many", "--models",
               str(work / "models.txt"), "--state", str(state), "--stimuli", "demo", "--allow-synthetic",
               "--permutations", str(permutations), "--no-progress"]
    batch = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    half = len(models) // 2
    while _done(state) < half and batch.poll() is None:
        time.sleep(0.05)
    batch.kill()
    batch.wait()
    done_before = _done(state)
    restarted = datetime.now().astimezone()
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    total = time.perf_counter() - start
    entries = json.loads(state.read_text())["models"]
    first_new = min(datetime.fromisoformat(entry["started"]) for entry in entries.values()
                    if datetime.fromisoformat(entry["started"]) >= restarted)
    print(f"subprocess annotate-many over {len(models)} models, killed with {done_before} done, then restarted:")
    print(f"  restart -> first new model started: {(first_new - restarted).total_seconds():.1f} s "
          f"(process start-up and {done_before} skip checks)")
    print(f"  resumed run: {total:.1f} s for the remaining {len(models) - done_before} models; "
          f"{_done(state)}/{len(models)} done in all")


def _done(state: Path) -> int:
    try:
        entries = json.loads(state.read_text())["models"]
    except (OSError, ValueError):
        return 0
    return sum(entry.get("status") == "opened-pr" for entry in entries.values())


if __name__ == "__main__":
    main()
