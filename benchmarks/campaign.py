"""Campaign backends: 30 tiny models in 3 parallel Job shards against the sequential local backend; the forward time
of a random base-size encoder per audio second; and, from it, what 1,000 base-size encoders cost on Hugging Face Jobs.

1. Thirty tiny random wav2vec 2.0 models are committed to the Hub-compatible test server (``tests/http_servers.py``)
   twice (two sets of repositories). ``annotate_many`` annotates the first set in this process, one model after the
   other, with torch forward hooks timing every forward pass; ``speat hub annotate-many --backend jobs
   --shard-size 10`` annotates the second set in 3 Jobs, which the test server runs as local processes. Printed: the
   wall-time ratio, and the share of the time outside forward passes (sequential: of the wall time; sharded: of the
   shards' process time, with the forward time of the sequential run, as the shards do the same passes).
2. A randomly initialised wav2vec 2.0 base and HuBERT base (``save_pretrained`` to a temporary folder, then
   ``from_pretrained``; no download) embed 10 s of audio: seconds of forward time per audio second on this machine.
3. The cost of 1,000 base-size encoders on the Jobs flavors, from that forward time, the audio of the study's
   stimuli (the clip counts of the selections; the clip lengths are assumed, and said so), and the Jobs prices
   (https://huggingface.co/docs/hub/jobs-pricing). GPU speed is not measured here: an assumed speed-up is printed.

Figures only: nothing is asserted. The machine may be shared: CPU timings are noisy.

    .venv/bin/python benchmarks/campaign.py [--models 30] [--permutations 200]
"""

from __future__ import annotations

import argparse
import csv
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

TOKEN = "hf_benchmarkCampaign0123"
CARD = "---\nlicense: apache-2.0\ntags: [audio]\n---\n# A tiny model\n"

JOBS_PRICES = {"cpu-basic": 0.01, "cpu-upgrade": 0.03, "t4-small": 0.40, "a10g-small": 1.00}
"""US$ per hour: https://huggingface.co/docs/hub/jobs-pricing (CPU Basic $0.01, CPU Upgrade $0.03, T4 small
$0.40); A10G small from the same page's GPU table as the Spaces GPU page lists it ($1.00). Billed per minute."""
SPEED_UP = {"cpu-basic": 1.0, "cpu-upgrade": 3.0, "t4-small": 25.0, "a10g-small": 50.0}
"""ASSUMED forward speed against this machine's measurement (cpu-basic has 2 vCPU, like the machine these figures
were made on; cpu-upgrade's 8 vCPU taken as 3x; the GPUs' factors for a base-size encoder in float32 are guesses,
not measurements)."""
SAA_SECONDS, MESS_SECONDS = 25.0, 3.0
"""ASSUMED clip lengths: a Speech Accent Archive reading of the elicitation paragraph (~25 s), a MESS sentence
(~3 s)."""
OVERHEAD_SECONDS = 120.0
"""ASSUMED per-encoder time outside forward passes for a base-size model (Job start, image pull or wheel install,
a 360 MB download, the permutation tests at 10,000 permutations, the Hub requests)."""


class ForwardTimer:
    """Wall time inside the outermost forward pass of any transformers model (torch's global module hooks)."""

    def __init__(self) -> None:
        self.seconds, self._depth, self._start = 0.0, 0, 0.0

    def __enter__(self) -> ForwardTimer:
        import torch

        self._hooks = [torch.nn.modules.module.register_module_forward_pre_hook(self._before),
                       torch.nn.modules.module.register_module_forward_hook(self._after)]
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks:
            hook.remove()

    def _before(self, module, inputs) -> None:
        import transformers

        if isinstance(module, transformers.PreTrainedModel):
            if self._depth == 0:
                self._start = time.perf_counter()
            self._depth += 1

    def _after(self, module, inputs, output) -> None:
        import transformers

        if isinstance(module, transformers.PreTrainedModel):
            self._depth -= 1
            if self._depth == 0:
                self.seconds += time.perf_counter() - self._start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--shard-size", type=int, default=10)
    parser.add_argument("--permutations", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="speat-campaign-bench-"))
    server = HubServer(tokens={TOKEN: "bench"}, data_dir=work / "hub").start()
    os.environ.update(HF_ENDPOINT=server.url, HF_HOME=str(work / "hf"), HF_TOKEN=TOKEN,
                      HF_UPDATE_DOWNLOAD_COUNTS="0", SPEAT_CACHE=str(work / "cache"))
    import transformers
    from hub_testing import hub_env, publish_tiny_model, write_tone_test  # after HF_ENDPOINT is set

    transformers.utils.logging.disable_progress_bar()
    try:
        tests = write_tone_test(work / "tones")
        sequential = [f"bench/seq-{index:02d}" for index in range(args.models)]
        sharded = [f"bench/job-{index:02d}" for index in range(args.models)]
        for index, model in enumerate(sequential + sharded):
            publish_tiny_model(server, model, readme=CARD, seed=index % args.models)
        wall_local, forward = run_local(sequential, tests, args.permutations, work)
        wall_jobs, shard_seconds = run_jobs(server, sharded, tests, args.permutations, args.shard_size, work,
                                            hub_env(server, work, HF_TOKEN=TOKEN))
        shards = -(-args.models // args.shard_size)
        print(f"{args.models} tiny models, a custom test of 3 tones per role, {args.permutations} permutations; "
              f"{os.cpu_count()} CPU cores")
        print(f"  local (sequential, in process): {wall_local:6.1f} s wall; forward passes {forward:.1f} s; outside "
              f"them {1 - forward / wall_local:.0%} of the wall time")
        print(f"  jobs ({shards} shards of {args.shard_size}, parallel): {wall_jobs:6.1f} s wall "
              f"(local/jobs = {wall_local / wall_jobs:.2f}x); shard processes {shard_seconds:.1f} s in all, "
              f"{1 - forward / shard_seconds:.0%} of it outside forward passes (process start, imports, downloads, "
              "Hub requests)")
        print("  (the test server runs the Jobs on this machine's cores: the ratio is bounded by them; on Jobs each "
              "shard has its own machine)")
    finally:
        server.stop()
    per_audio_second = base_forward_time(work)
    costs(per_audio_second)


def run_local(models: list[str], tests: Path, permutations: int, work: Path) -> tuple[float, float]:
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.hub.batch import annotate_many

    settings = EvaluationSettings(tests=(str(tests),), num_permutations=permutations, progress=False)
    with ForwardTimer() as timer:
        start = time.perf_counter()
        summary = annotate_many(models, settings, state_path=work / "local.json", report=lambda line: None)
        wall = time.perf_counter() - start
    if summary.failed:
        print(f"  (local: {len(summary.failed)} failed: {next(iter(summary.failed.values()))})")
    return wall, timer.seconds


def run_jobs(server: HubServer, models: list[str], tests: Path, permutations: int, shard_size: int, work: Path,
             env: dict[str, str]) -> tuple[float, float]:
    (work / "jobs.txt").write_text("\n".join(models) + "\n")
    command = [str(Path(sys.executable).with_name("speat")), "hub", "annotate-many", "--models", str(work / "jobs.txt"),
               "--state", str(work / "jobs.json"), "--tests", str(tests), "--permutations", str(permutations),
               "--no-progress", "--backend", "jobs", "--image", "speat/bench:1", "--shard-size", str(shard_size),
               "--poll-interval", "0.2"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(f"  (jobs: exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]})")
    seconds = 0.0
    for job_id in server.jobs:
        info = server.job_info(job_id)
        if info.get("startedAt") and info.get("finishedAt"):
            seconds += (datetime.fromisoformat(info["finishedAt"].replace("Z", "+00:00"))
                        - datetime.fromisoformat(info["startedAt"].replace("Z", "+00:00"))).total_seconds()
    return wall, seconds


def base_forward_time(work: Path) -> float:
    """Seconds of forward time per audio second of random base-size encoders (the slower of wav2vec2 and HuBERT)."""
    import torch
    import transformers

    audio = torch.randn(1, 16_000 * 10)
    slowest = 0.0
    for name, config, model_class in (("wav2vec2-base", transformers.Wav2Vec2Config(), transformers.Wav2Vec2Model),
                                      ("hubert-base", transformers.HubertConfig(), transformers.HubertModel)):
        folder = work / name
        model_class(config).save_pretrained(folder)
        model = model_class.from_pretrained(folder).eval()
        with torch.inference_mode():
            model(audio)  # warm-up
            start = time.perf_counter()
            for _ in range(3):
                model(audio, output_hidden_states=True)
            seconds = (time.perf_counter() - start) / 3 / 10
        parameters = sum(parameter.numel() for parameter in model.parameters()) / 1e6
        print(f"{name} (random, {parameters:.0f} M parameters, float32, {torch.get_num_threads()} threads): "
              f"{seconds:.3f} s of forward time per audio second")
        slowest = max(slowest, seconds)
    return slowest


def costs(per_audio_second: float) -> None:
    from importlib.resources import files

    selections = files("speat_metric") / "data" / "selections"

    def rows(name: str) -> int:
        with (selections / name).open(encoding="utf-8") as handle:
            return sum(1 for _ in csv.DictReader(handle))

    saa = sum(rows(name) for name in ("saa_male_female_clip_info.csv", "saa_usa_young_old_clip_info.csv",
                                      "saa_us_korean_clip_info.csv"))
    mess = rows("mess_speat_attribute_selection.csv")
    audio = saa * SAA_SECONDS + mess * MESS_SECONDS
    print(f"1,000 base-size encoders: {saa} SAA readings (assumed {SAA_SECONDS:.0f} s each) and {mess} MESS clips "
          f"(assumed {MESS_SECONDS:.0f} s) = {audio / 3600:.1f} h of audio per encoder; plus an assumed "
          f"{OVERHEAD_SECONDS:.0f} s per encoder outside forward passes")
    print("  prices: https://huggingface.co/docs/hub/jobs-pricing (US$/h, billed per minute); speed-ups against this "
          "machine ASSUMED for cpu-upgrade and the GPUs (not measured here)")
    for flavor, price in JOBS_PRICES.items():
        hours = 1000 * (audio * per_audio_second / SPEED_UP[flavor] + OVERHEAD_SECONDS) / 3600
        print(f"  {flavor:<11} ${price:.2f}/h, speed x{SPEED_UP[flavor]:<4g}: {hours:8.0f} machine-hours, "
              f"${hours * price:8.0f}")
    print(json.dumps({"forward_seconds_per_audio_second": round(per_audio_second, 4)}))


if __name__ == "__main__":
    main()
