"""A tiny random speech encoder with a PLANTED bias: one FFN row that separates X from Y and writes toward A (issue 28).

The stimuli are noisy tones; X speaker i and Y speaker i share a pitch (within 5%) and differ in a faint high band
(a 3.2 kHz tone) that X clips carry and Y clips do not; A clips carry it too, B clips do not. The random model barely
notices the band, so its d is moderate. `plant_bias` turns one FFN row of
the first layer into a band detector (on for X and A, off for Y and B) whose output column points along the
A-minus-B direction of the hidden states it reaches, large enough to dominate d (model and test seed 0, 16
speakers: d 0.43 -> 1.39; on the two sides of two speaker folds -0.06 -> 1.04 and 0.90 -> 1.66). Closing that
row's gate undoes it on every side.

Example:
    >>> planted = make_planted_bias(tmp_path)           # doctest: +SKIP
    >>> planted.component, planted.tests["planted"]      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
from tiny_models import save_prunable_model

from speat_metric.adapters import load_encoder
from speat_metric.adapters.base import SpeechEncoder
from speat_metric.pruning.attribution import Component, encode_with_grad, mean_over_frames, prunable_layers
from speat_metric.stimuli import Stimulus, StimulusSet, load_custom_test, load_speat_test

RATE = 16_000
SECONDS = 0.5
BAND_HZ = 3_200.0
BAND_AMPLITUDE = 0.03  # faint: the random model alone gives a moderate d
TEST = "planted"
PITCH_JITTER = 0.05


@dataclass(frozen=True)
class PlantedBias:
    """The biased adapter (its model's weights changed in place), its test and the planted component."""

    encoder: SpeechEncoder
    tests: dict[str, StimulusSet]
    component: Component
    separation: float  # the chosen row's |mean_X - mean_Y| / pooled std before amplification


def clip(pitch: float, band: bool, seed: int) -> np.ndarray:
    """A noisy tone at `pitch` with two harmonics, plus the faint band when `band`."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(SECONDS * RATE)) / RATE
    wave = sum(0.3 / harmonic * np.sin(2 * np.pi * pitch * harmonic * time + rng.uniform(0, 6.3))
               for harmonic in (1, 2, 3))
    wave = wave + 0.05 * rng.standard_normal(len(time))
    if band:
        wave = wave + BAND_AMPLITUDE * np.sin(2 * np.pi * BAND_HZ * time)
    return wave.astype(np.float32)


def write_planted_test(directory: Path, *, speakers: int = 6, clips_per_speaker: int = 2, attributes: int = 6,
                       seed: int = 0) -> StimulusSet:
    """X speakers (band) and Y speakers (no band), `clips_per_speaker` clips each, X speaker i matched with Y speaker
    i clip by clip; `attributes` A clips (band) and B clips (no band); each stimulus carries its ``speaker_id``."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[str]] = {"x": [], "y": [], "a": [], "b": []}
    speaker_ids: dict[str, str] = {}
    pairs = []
    for speaker in range(speakers):
        pitch = rng.uniform(140, 400)  # matched speakers share pitch and noise: only the band tells X from Y
        for number in range(clips_per_speaker):
            names = {}
            for role in ("x", "y"):
                name = f"{role}/s{speaker}_{number}.wav"
                soundfile.write(_mkdir(directory, role) / Path(name).name,
                                clip(pitch * (1 + 0.03 * number) * rng.uniform(1 - PITCH_JITTER, 1 + PITCH_JITTER),
                                     role == "x", int(rng.integers(1 << 31))), RATE)
                groups[role].append(name)
                speaker_ids[name] = f"{role}{speaker}"
                names[role] = name
            pairs.append([names["x"], names["y"]])
    for role in ("a", "b"):
        for number in range(attributes):
            name = f"{role}/{number}.wav"
            soundfile.write(_mkdir(directory, role) / Path(name).name,
                            clip(rng.uniform(140, 400), role == "a", int(rng.integers(1 << 31))), RATE)
            groups[role].append(name)
    definition = directory / f"{TEST}.json"
    definition.write_text(json.dumps({"name": TEST, **groups, "pairs": pairs,
                                      "group_names": ["band", "no band", "band attribute", "no-band attribute"]}))
    test = load_speat_test(load_custom_test(definition), progress=False)
    by_path = {str((directory / name).resolve()): speaker for name, speaker in speaker_ids.items()}
    stimuli = tuple(dataclasses.replace(stimulus, metadata={
        **stimulus.metadata, "speaker_id": by_path.get(str(Path(stimulus.path).resolve()))}) for stimulus in test)
    return dataclasses.replace(test, stimuli=stimuli)


def _mkdir(directory: Path, role: str) -> Path:
    (directory / role).mkdir(parents=True, exist_ok=True)
    return directory / role


@dataclass(frozen=True)
class Recorded:
    """What the encoder computes for some stimuli, each encoded alone (no padding)."""

    ffn_inputs: list[list[torch.Tensor]]  # per layer, per stimulus: (frames, hidden) input of the FFN (after its norm)
    pooled: torch.Tensor                  # (stimuli, hidden states, hidden): frame means of every hidden state


def record(encoder: SpeechEncoder, stimuli: Sequence[Stimulus]) -> Recorded:
    """Encode each of `stimuli` and record its FFN inputs and frame-mean hidden states."""
    layers = prunable_layers(encoder)
    inputs: list[list[torch.Tensor]] = [[] for _ in layers]
    handles = [layer.intermediate.register_forward_hook(
        lambda module, args, output, number=number: inputs[number].append(args[0].detach()[0].double()))
        for number, layer in enumerate(layers)]
    pooled = []
    try:
        with torch.no_grad():
            for stimulus in stimuli:
                output = encode_with_grad(encoder, [soundfile.read(stimulus.path, dtype="float32")[0]])
                pooled.append(mean_over_frames(output)[0].double())
    finally:
        for handle in handles:
            handle.remove()
    return Recorded(inputs, torch.stack(pooled))


def separation(on: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    """Per column, ``|mean_on - mean_off| / sqrt((var_on + var_off) / 2)`` of two (samples, columns) tensors."""
    return (on.mean(dim=0) - off.mean(dim=0)).abs() / torch.sqrt((on.var(dim=0) + off.var(dim=0)) / 2)


def plant_bias(encoder: SpeechEncoder, test: StimulusSet, *, dominance: float = 2.0, margin: float = 3.0,
               layer: int = 0) -> tuple[Component, float]:
    """Plant the bias in FFN row r of `layer`; returns the planted row and its X-Y separation.

    The band is the stimuli's shared property: X and A clips carry it, Y and B clips do not. With ``h`` the input of
    the layer's FFN at a frame (after its layer norm):

    1. r is the row whose frame pre-activation already separates band frames from no-band frames best
       (`separation`).
    2. Its input weights become the band detector ``w ~ (S + eps I)^-1 (mean_band h - mean_noband h)`` (S the
       pooled within-class covariance of h over frames: Fisher's direction), scaled and shifted so that the mean band
       frame's pre-activation is +`margin` and the mean no-band frame's -`margin`: after the activation the row is on
       for X and A and (nearly) off for Y and B.
    3. Its output column (what it writes into the residual stream) becomes ``c u``: u the unit A-minus-B direction
       of the frame-mean hidden states the layer reaches (its output and every later one, averaged), c such that
       the vector written at the mean band frame is `dominance` times the mean norm of those hidden states. X moves
       toward A by more than the random model's own differences between speakers, so the plant dominates d on any
       subset of the speakers, and closing its gate takes it away.

    The separation returned is the planted row's `separation` of X from Y by the clips' frame-mean pre-activations.
    """
    layer = layer % len(prunable_layers(encoder))
    recorded = {role: record(encoder, test.of_role(role)) for role in "XYAB"}
    frames = {band: torch.cat([clip for role in roles for clip in recorded[role].ffn_inputs[layer]])
              for band, roles in ((True, "XA"), (False, "YB"))}
    gated = prunable_layers(encoder)[layer]
    with torch.no_grad():
        row = int(separation(gated.intermediate(frames[True].float()),
                             gated.intermediate(frames[False].float())).argmax())
    on, off = frames[True], frames[False]
    within = (torch.cov(on.T) + torch.cov(off.T)) / 2
    weight = torch.linalg.solve(within + 1e-3 * torch.eye(len(within), dtype=within.dtype),
                                on.mean(dim=0) - off.mean(dim=0))
    centre = float(((on @ weight).mean() + (off @ weight).mean()) / 2)
    gap = float((on @ weight).mean() - (off @ weight).mean())
    weight, bias = weight * 2 * margin / gap, -centre * 2 * margin / gap  # band mean at +margin, no-band at -margin
    reached = slice(layer + 1, None)  # hidden state l + 1 is the output of layer l
    direction = (recorded["A"].pooled[:, reached].mean(dim=(0, 1)) - recorded["B"].pooled[:, reached].mean(dim=(0, 1)))
    hidden = torch.cat([recorded[role].pooled[:, reached] for role in "XYAB"]).norm(dim=-1).mean()
    on_band = float(torch.nn.functional.gelu(torch.tensor(margin)))  # the row's output at the mean band frame
    column = dominance * hidden / on_band * direction / direction.norm()
    with torch.no_grad():
        gated.intermediate.weight[row] = weight.float()
        gated.intermediate.bias[row] = bias
        gated.output.weight[:, row] = column.float()
    clip_means = {role: torch.stack([clip.mean(dim=0) for clip in recorded[role].ffn_inputs[layer]]) @ weight
                  for role in "XY"}
    return Component("row", layer, row), float(separation(clip_means["X"][:, None], clip_means["Y"][:, None]))


def make_planted_bias(directory: Path, *, kind: str = "wav2vec2", seed: int = 0, dominance: float = 2.0,
                      speakers: int = 16) -> PlantedBias:
    """A tiny random `kind` model (tests/tiny_models.py) with a bias planted on the `write_planted_test` stimuli."""
    model = save_prunable_model(kind, directory / "model", seed=seed)
    encoder = load_encoder(str(model))
    test = write_planted_test(directory / "stimuli", speakers=speakers, clips_per_speaker=1, seed=seed)
    component, separation = plant_bias(encoder, test, dominance=dominance)
    return PlantedBias(encoder, {TEST: test}, component, separation)
