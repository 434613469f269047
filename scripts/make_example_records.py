"""Make the Space's bundled example records (``speat_metric/data/example_records/``) with speat's own commands.

Everything runs offline on the embedded SYNTHETIC demo stimuli with randomly initialised models, so every record is
labelled ``synthetic-stimuli`` and none is a bias measurement. It gives each view of the Space something to show:

- ``speat evaluate`` of the four classical features, a random MelHuBERT small (mean and per-layer pooling), tiny
  random wav2vec2, HuBERT and WavLM models, and a small wav2vec2 (mean and per-layer pooling);
- ``speat evaluate`` of a directory of checkpoints (``pretraining-run/checkpoint-N``; the weights move from one
  random initialisation towards another), for the curve over training steps;
- ``speat prune rows|heads|weights`` (a tiny sweep each) and ``speat distill --layers 1,2,3`` of the small
  wav2vec2, on the demo audio as training data (a command that fails is skipped with a message, and the bundle is
  made without it).

Machine paths (the temporary folder, the checkout) are removed from the records, which are then checked for any
absolute path left. Usage::

    .venv/bin/python scripts/make_example_records.py [--out speat_metric/data/example_records] [--permutations N]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tiny_models: the tiny random encoders the tests use

import torch  # noqa: E402
import transformers  # noqa: E402
from tiny_models import save_tiny_model  # noqa: E402

from speat_metric.results import EvaluationRecord  # noqa: E402
from speat_metric.space.sources import read_record_files  # noqa: E402

logger = logging.getLogger("make_example_records")

DEFAULT_OUT = REPO / "speat_metric" / "data" / "example_records"
DEMO_AUDIO = REPO / "speat_metric" / "data" / "demo" / "audio"
CHECKPOINT_STEPS = (0, 250, 500, 1000, 2000, 4000)
NOT_BUILT = "not built yet"


def save_small_wav2vec2(directory: Path, *, seed: int) -> Path:
    """A small random wav2vec2 (4 layers, 4 heads, FFN 64): big enough for a few pruning steps."""
    torch.manual_seed(seed)
    config = transformers.Wav2Vec2Config(hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                         intermediate_size=64, conv_dim=(32, 32), conv_stride=(5, 4),
                                         conv_kernel=(10, 8), feat_extract_norm="layer", do_stable_layer_norm=True,
                                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    transformers.Wav2Vec2Model(config).save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(directory)
    return directory


def save_checkpoint_series(directory: Path) -> Path:
    """``checkpoint-N`` folders whose weights move linearly from one random tiny wav2vec2 to another."""
    model = transformers.Wav2Vec2Model.from_pretrained(save_tiny_model("wav2vec2", directory / "_start", seed=0))
    end = transformers.Wav2Vec2Model.from_pretrained(save_tiny_model("wav2vec2", directory / "_end", seed=1))
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(directory / "_start")
    start_state = {name: value.clone() for name, value in model.state_dict().items()}
    end_state = end.state_dict()
    for step in CHECKPOINT_STEPS:
        fraction = step / CHECKPOINT_STEPS[-1]
        model.load_state_dict({name: torch.lerp(value, end_state[name], fraction) if value.is_floating_point()
                               else value for name, value in start_state.items()})
        model.save_pretrained(directory / f"checkpoint-{step}")
        extractor.save_pretrained(directory / f"checkpoint-{step}")
    shutil.rmtree(directory / "_start")
    shutil.rmtree(directory / "_end")
    return directory


def speat(*arguments: str, cwd: Path, optional: bool = False) -> str | None:
    """Run one ``speat`` command. A required command that fails stops the script; an `optional` one (pruning,
    distillation) that is still a placeholder or fails is skipped, and the reason is returned."""
    command = [sys.executable, "-m", "speat_metric.cli", *arguments]
    if optional:
        usage = subprocess.run([*command[:3], arguments[0], "--help"], capture_output=True, text=True, cwd=cwd)
        if NOT_BUILT in usage.stdout:
            return f"`speat {arguments[0]}` is {NOT_BUILT}"
    logger.info("$ speat %s", " ".join(arguments))
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        if optional:
            return (f"`speat {' '.join(arguments[:2])}` failed (exit code {done.returncode}; -9: killed, e.g. out of "
                    f"memory): {done.stderr.strip()[-1500:]}")
        raise SystemExit(f"speat {' '.join(arguments)} failed:\n{done.stderr[-4000:]}")
    return None


ENCODED = ("cosines",)
"""Record fields holding encoded numbers (base64 text may start with ``/``): neither rewritten nor path-checked."""


def portable(data: Any, roots: list[str]) -> Any:
    """`data` with the machine's folders removed from every string (``/tmp/x/models/m`` -> ``models/m``)."""
    if isinstance(data, dict):
        return {key: value if key in ENCODED else portable(value, roots) for key, value in data.items()}
    if isinstance(data, list):
        return [portable(value, roots) for value in data]
    if isinstance(data, str):
        for root in roots:
            data = data.replace(root + "/", "").replace(root, ".")
    return data


def absolute_paths(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [path for key, value in data.items() if key not in ENCODED for path in absolute_paths(value)]
    if isinstance(data, list):
        return [path for value in data for path in absolute_paths(value)]
    return [data] if isinstance(data, str) and data.startswith(("/", "~")) and len(data) > 1 else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the records go (replaced)")
    parser.add_argument("--permutations", type=int, default=10_000, help="permutations per SpEAT (default 10000)")
    parser.add_argument("--skip-compression", action="store_true",
                        help="leave out the pruning sweeps and the distillation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    transformers.utils.logging.disable_progress_bar()

    with tempfile.TemporaryDirectory(prefix="speat-examples-") as temporary:
        work = Path(temporary).resolve()
        models, results = work / "models", work / "results"
        for kind in ("wav2vec2", "hubert", "wavlm"):
            save_tiny_model(kind, models / f"tiny-{kind}", seed=0)
        save_small_wav2vec2(models / "small-wav2vec2", seed=0)
        save_checkpoint_series(models / "pretraining-run")
        common = ["--stimuli", "demo", "--permutations", str(args.permutations), "--seed", "0",
                  "--cache-dir", str(work / "cache"), "--no-progress", "--format", "json", "--out", str(results)]
        speat("evaluate", "stft", "spectrogram", "mel_spectrogram", "mfcc", "random:melhubert-small",
              "models/tiny-wav2vec2", "models/tiny-hubert", "models/tiny-wavlm", "models/small-wav2vec2", *common,
              cwd=work)
        speat("evaluate", "random:melhubert-small", "models/small-wav2vec2", "--pooling", "per-layer", *common,
              cwd=work)
        speat("evaluate", "models/pretraining-run", *common, cwd=work)

        skipped = ["--skip-compression was given"] if args.skip_compression else compression_runs(work, args)

        records, warnings = read_record_files(results)
        prefixes = [""] * len(records)
        # A compression run's records are named as in its own results/ folder: prefixed with the run, they cannot
        # collide when flattened. A distillation's teacher records (no compression) are a re-run of the plain
        # evaluation above, which the Space would only list as superseded: left out.
        for run in sorted((work / "runs").iterdir()) if (work / "runs").is_dir() else []:
            run_records, more_warnings = read_record_files(run)
            compressed = [record for record in run_records if record.compression is not None]
            records += compressed
            prefixes += [f"{run.name}__"] * len(compressed)
            warnings += [warning for warning in more_warnings if "not a speat evaluation record" not in warning]
        if warnings:
            raise SystemExit("unreadable records:\n" + "\n".join(warnings))
        roots = [str(work), str(REPO)]
        cleaned = [EvaluationRecord.from_dict(portable(record.to_dict(), roots)) for record in records]
        leftover = sorted({path for record in cleaned for path in absolute_paths(record.to_dict())})
        if leftover:
            raise SystemExit("machine paths left in the records: " + ", ".join(leftover[:10]))

        staging = work / "staging"
        staging.mkdir()
        for prefix, record in zip(prefixes, cleaned):
            path = staging / f"{prefix}{record.file_name}"
            if path.exists():
                raise SystemExit(f"two records would share the file name {record.file_name}")
            path.write_text(json.dumps(record.to_dict(), allow_nan=False, separators=(",", ":")) + "\n")
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(staging, args.out)
    size = sum(path.stat().st_size for path in args.out.glob("*.json"))
    logger.info("%d records (%.0f KB) written to %s", len(cleaned), size / 1024, args.out)
    if skipped:
        logger.warning("made WITHOUT these compression runs (the Space's pruning and distillation views stay empty "
                       "for the bundle):\n- %s", "\n- ".join(skipped))


def compression_runs(work: Path, args: argparse.Namespace) -> list[str]:
    """A tiny sweep of each pruning method and a distillation into 1, 2 and 3-layer students of the small wav2vec2;
    returns what was skipped and why."""
    # Short crops and small batches: the small wav2vec2 makes 800 frames a second (a 15.625 s crop of the default
    # would need tens of GB for attention).
    training = ["--data", str(DEMO_AUDIO), "--stimuli", "demo", "--permutations", str(args.permutations),
                "--batch-size", "4", "--crop-seconds", "2", "--no-progress"]
    small = "models/small-wav2vec2"
    pruning = ["--objective", "teacher", "--warmup-steps", "1"]  # the small model has no pre-training head
    (work / "weights.yaml").write_text(  # every check a plateau: sparsity 25% at step 2, 50% at 4, the end at 6
        "schedule: {warmup_steps: 2, check_every: 2, plateau_window: 1, plateau_tolerance: 1000.0,\n"
        "           sparsity: [{increment: 0.25, until: 0.5}]}\n")
    runs = [
        ("prune", "rows", small, "--out", "runs/prune-rows", "--rows-per-step", "16", "--min-rows", "16",
         "--steps-per-prune", "2", "--max-steps", "8", *pruning),
        ("prune", "heads", small, "--out", "runs/prune-heads", "--heads-per-step", "1", "--min-heads", "1",
         "--steps-per-prune", "2", "--max-steps", "8", *pruning),
        ("prune", "weights", small, "--out", "runs/prune-weights", "--config", "weights.yaml", "--objective",
         "teacher"),
        ("distill", small, "--layers", "1,2,3", "--targets", "2,4", "--out", "runs/distill", "--max-steps", "6",
         "--checkpoint-every", "3"),
    ]
    return [reason for run in runs if (reason := speat(*run, *training, cwd=work, optional=True))]


if __name__ == "__main__":
    main()
