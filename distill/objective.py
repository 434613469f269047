"""What the student learns: DistilHuBERT's layer-wise loss, and the batches it is computed on.

`distillation_loss` is S3PRL's distiller loss: over every target layer, frame and dimension, the mean absolute
error between the head's prediction and the teacher's hidden state, plus ``-log sigmoid(cosine similarity)`` per
frame, averaged (``loss_type: l1``, ``cosine_loss: 1``); each target counts equally.

`DistillationBatches` turns crops into the teacher's inputs and, for denoising distillation, the student's inputs
from the same crops mixed with noise (`speat_metric.distill.noise.mix`); without noise both see the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from speat_metric.distill.noise import NoiseSource, mix
from speat_metric.training.models import ModelInputs


def distillation_loss(predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], *,
                      l1_weight: float = 1.0, cosine_weight: float = 1.0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss, and each target's share (for the logs).

    Args:
        predictions: one (batch, frames, dim) tensor per target layer, from the heads.
        targets: the teacher's hidden states of those layers, the same shapes.
        l1_weight, cosine_weight: the weights of the two terms.

    Returns:
        The mean over targets of ``l1_weight * mean |p - t| + cosine_weight * mean(-log sigmoid(cos(p, t)))``, and
        the per-target values (detached).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    per_target = []
    for prediction, target in zip(predictions, targets):
        if prediction.shape != target.shape:
            raise ValueError(f"a prediction of shape {tuple(prediction.shape)} for a target of {tuple(target.shape)}")
        prediction, target = prediction.float(), target.float()
        l1 = F.l1_loss(prediction, target)
        cosine = -F.logsigmoid(F.cosine_similarity(prediction, target, dim=-1)).mean()
        per_target.append(l1_weight * l1 + cosine_weight * cosine)
    stacked = torch.stack(per_target)
    return stacked.mean(), [value.detach() for value in stacked]


@dataclass(frozen=True)
class DistillationBatches:
    """A batch of equal-length crops as ``{"teacher": inputs, "student": inputs}`` (picklable, for workers).

    Attributes:
        inputs: the model inputs (the teacher's feature extractor or MelHuBERT's filter banks; the student's are the
            same).
        noise: the noise of denoising distillation (None: the student sees the clean speech too).
        mix_ratio: alpha of `speat_metric.distill.noise.mix`.
    """

    inputs: ModelInputs
    noise: NoiseSource | None = None
    mix_ratio: float = 0.2

    def noisy(self, waveforms: Sequence[np.ndarray], generator: np.random.Generator) -> list[np.ndarray]:
        """The student's waveforms: each crop mixed with a noise segment drawn from `generator`."""
        return [mix(waveform, self.noise.sample(len(waveform), generator), self.mix_ratio) for waveform in waveforms]

    def __call__(self, waveforms: list[np.ndarray], generator: np.random.Generator) -> dict[str, dict]:
        teacher = self.inputs(waveforms)
        if self.noise is None:
            return {"teacher": teacher, "student": teacher}
        return {"teacher": teacher, "student": self.inputs(self.noisy(waveforms, generator))}
