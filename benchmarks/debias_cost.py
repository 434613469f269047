"""The cost of one debias step against one ordinary pruning step, on a random base-size wav2vec 2.0 (issue 28).

One random ``Wav2Vec2Config()`` model (95M parameters, the compute of wav2vec2-base; nothing is downloaded), saved to
a temporary folder and loaded through the adapter ``speat evaluate`` uses, and a small SpEAT test of noisy tones
(``--clips`` per role, ``--seconds`` long). Side by side, in one run, each after a warm-up of the training step:

- ordinary row pruning step (``speat prune rows``): `row_scores` of every layer, `prune_rows` (the 128 lowest rows of
  each layer, the study's step) and one training step (teacher objective: student forward and backward, frozen
  teacher forward) on 2 crops of 4 s;
- debias step (``speat prune debias``): `attach_gates`, `attribute` (the pooled embeddings of every clip without
  gradients, then each batch again with gradients of sum |d| through the gates), close the same number of rows (the
  top-attributed, 128 x layers over the model) and slice them, then the same training step.

Printed: each phase's seconds, each step's total and the ratio debias / ordinary.

    .venv/bin/python benchmarks/debias_cost.py [--clips 4] [--seconds 2]
"""

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import transformers

from speat_metric.adapters import load_encoder
from speat_metric.adapters.pruned import prunable
from speat_metric.pruning.attribution import attach_gates, attribute
from speat_metric.pruning.objectives import hidden_state_loss
from speat_metric.pruning.structured import prune_rows, row_scores
from speat_metric.stimuli import load_custom_test, load_speat_test
from speat_metric.training.slicing import keep_ffn_dims

ROWS_PER_LAYER = 128  # the study's row step (configs/rows.yaml: rows_per_step)
CROPS, CROP_SECONDS = 2, 4


def write_test(directory: Path, clips: int, seconds: float) -> Path:
    """A custom SpEAT test of `clips` noisy tones per role, `seconds` long."""
    rng = np.random.default_rng(0)
    groups = {}
    for role, base in (("x", 200), ("y", 330), ("a", 470), ("b", 610)):
        groups[role] = []
        for index in range(clips):
            time_axis = np.arange(int(seconds * 16_000)) / 16_000
            noise = 0.05 * rng.standard_normal(len(time_axis))
            wave = 0.3 * np.sin(2 * np.pi * (base + 23 * index) * time_axis) + noise
            path = directory / role / f"{index}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, wave.astype(np.float32), 16_000)
            groups[role].append(f"{role}/{index}.wav")
    definition = directory / "tones.json"
    definition.write_text(json.dumps({"name": "tones", **groups}))
    return definition


def training_step(student: torch.nn.Module, teacher: torch.nn.Module, batch: torch.Tensor) -> None:
    """One teacher-objective step (as benchmarks/pruned_inference.py times it); a fresh Adam, since slicing makes
    new parameters (the pruning loop rebuilds its optimiser after a pruning step too)."""
    optimizer = torch.optim.Adam([parameter for parameter in student.parameters() if parameter.requires_grad],
                                 lr=1e-5)
    student.train()
    with torch.no_grad():
        target = teacher(batch, output_hidden_states=True).hidden_states
    loss = hidden_state_loss(list(student(batch, output_hidden_states=True).hidden_states), list(target))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    student.eval()


def timed(phases: dict[str, float], name: str, function, *args):
    start = time.perf_counter()
    result = function(*args)
    phases[name] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="stimuli per role (X, Y, A, B)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each stimulus")
    parser.add_argument("--verify", type=int, default=16,
                        help="components whose exact effect is measured (speat prune debias --verify; default 16)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        config = transformers.Wav2Vec2Config(layerdrop=0.0, apply_spec_augment=False)
        transformers.Wav2Vec2Model(config).save_pretrained(folder / "model")
        transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False, do_normalize=True).save_pretrained(
            folder / "model")
        tests = {"tones": load_speat_test(load_custom_test(write_test(folder / "stimuli", args.clips, args.seconds)),
                                          progress=False)}
        ordinary_adapter = load_encoder(str(folder / "model"))
        debias_adapter = load_encoder(str(folder / "model"))
        teacher = copy.deepcopy(ordinary_adapter.model).eval().requires_grad_(False)
        batch = torch.randn(CROPS, CROP_SECONDS * 16_000) * 0.1
        training_step(copy.deepcopy(ordinary_adapter.model), teacher, batch)  # warm-up

        ordinary: dict[str, float] = {}
        model = ordinary_adapter.model
        timed(ordinary, "row scores", lambda: [row_scores(layer) for layer in prunable(model).layers()])
        timed(ordinary, "slice (prune_rows)", prune_rows, model, ROWS_PER_LAYER)
        timed(ordinary, "training step", training_step, model, teacher, batch)

        debias: dict[str, float] = {}
        model = debias_adapter.model
        gates = timed(debias, "attach gates", attach_gates, debias_adapter)
        attribution = timed(debias, "attribution (d forward + backward)", attribute, debias_adapter, gates, tests)
        timed(debias, f"exact check of the top {args.verify} (forwards)",
              lambda: attribute(debias_adapter, gates, tests, verify=args.verify))
        debias[f"exact check of the top {args.verify} (forwards)"] -= debias["attribution (d forward + backward)"]
        layers = prunable(model).layers()

        def close_and_slice() -> None:
            top = attribution.ranked("row")[:ROWS_PER_LAYER * len(layers)]
            gates.remove()
            for number, layer in enumerate(layers):
                drop = {component.index for component in top if component.layer == number}
                keep_ffn_dims(layer, [row for row in range(layer.ffn_dim) if row not in drop])

        timed(debias, "close + slice", close_and_slice)
        timed(debias, "training step", training_step, model, teacher, batch)

    stimuli = sum(len(test) for test in tests.values())
    print(f"\nrandom base-size wav2vec 2.0 ({sum(p.numel() for p in teacher.parameters()):,} parameters), "
          f"{torch.get_num_threads()} torch threads; training step: {CROPS} crops of {CROP_SECONDS} s; attribution on "
          f"{stimuli} stimuli of {args.seconds:g} s ({args.clips} per role); {ROWS_PER_LAYER} rows per layer removed")
    for name, phases in (("ordinary pruning step (speat prune rows)", ordinary),
                         ("debias step (speat prune debias)", debias)):
        print(f"{name}: {sum(phases.values()):.2f} s")
        for phase, seconds in phases.items():
            print(f"  {phase:38} {seconds:7.2f} s")
    print(f"ratio debias / ordinary: {sum(debias.values()) / sum(ordinary.values()):.2f}x "
          f"(attribution alone: {debias['attribution (d forward + backward)'] / sum(ordinary.values()):.2f}x "
          "an ordinary step)")


if __name__ == "__main__":
    main()
