"""Students of a teacher (DistilHuBERT, S3PRL's distiller): the teacher's front end and first layers, plus heads.

`build_student` copies the teacher's encoder and keeps its first ``layers`` transformer layers: the front end (the
CNN of wav2vec2-family models, MelHuBERT's Mel input projection), the feature projection, the convolutional position
embedding and the encoder's layer norm come along unchanged (``init_teacher_conv_layers`` and
``init_teacher_encoder_layers``), so before training the student's first hidden states are the teacher's. The
student is an ordinary model of the teacher's kind with fewer layers: it is saved as a transformers directory or a
MelHuBERT checkpoint (`speat_metric.training.models.TrainableEncoder.save`), which ``speat evaluate`` and
``from_pretrained`` read.

`DistillationModel` is what is trained: the student and one prediction head per teacher target layer (GELU then a
linear layer on the student's last hidden state, S3PRL's ``SplitLinear`` with ``task_emb_type: expand-last``). The
heads are training-only: they are never saved with the student.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from speat_metric.adapters.pruned import encoder_of, prunable
from speat_metric.training.models import TrainableEncoder


def _layer_stack(model: nn.Module) -> nn.Module:
    """The module holding the transformer ``layers`` (``.encoder`` of transformers base models and MelHuBERT)."""
    return encoder_of(model).encoder


def teacher_depth(teacher: TrainableEncoder) -> int:
    """The teacher's transformer layers."""
    return len(teacher.layers())


def check_layers(teacher: TrainableEncoder, *, layers: tuple[int, ...], targets: tuple[int, ...]) -> None:
    """Students no deeper than the teacher, targets among its layers.

    Raises:
        ValueError: naming the option, the value and the teacher's depth.
    """
    depth = teacher_depth(teacher)
    for name, values in (("--layers", layers), ("--targets", targets)):
        outside = [value for value in values if not 1 <= value <= depth]
        if outside:
            raise ValueError(f"{name} {','.join(map(str, values))}: {teacher.spec} has {depth} transformer layers, so "
                             f"{', '.join(map(str, outside))} {'is' if len(outside) == 1 else 'are'} out of range "
                             f"(1 to {depth})")


def build_student(teacher: TrainableEncoder, layers: int, *, init_from_teacher: bool = True) -> TrainableEncoder:
    """A student of `layers` transformer layers, copied from the teacher (or of its architecture, at random).

    The teacher is left as it is. Pruned teachers (``speat prune`` checkpoints) work too: their layers are copied
    with their shapes.
    """
    encoder = teacher.student_encoder(layers, init_from_teacher=init_from_teacher)
    stack = _layer_stack(encoder)
    stack.layers = nn.ModuleList(list(stack.layers)[:layers])
    encoder.train().requires_grad_(True)
    student = dataclasses.replace(teacher, spec=f"{teacher.spec} ({layers}-layer student)", encoder=encoder)
    student.training_config(spec_augment=False)
    return student


def width(encoder: nn.Module) -> int:
    """The hidden size of an encoder (the input width of its first attention)."""
    return prunable(encoder).layers()[0].query.in_features


class PredictionHeads(nn.Module):
    """One head per teacher target: GELU, then a linear map from the student's width to the teacher's."""

    def __init__(self, student_width: int, teacher_width: int, num_targets: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.GELU(), nn.Linear(student_width, teacher_width))
                                   for _ in range(num_targets))

    def forward(self, last_hidden_state: torch.Tensor) -> list[torch.Tensor]:
        return [head(last_hidden_state) for head in self.heads]


class DistillationModel(nn.Module):
    """The student with its prediction heads: ``forward`` gives one prediction per teacher target.

    Attributes:
        student: the student's encoder (what is saved).
        heads: the training-only prediction heads.
    """

    def __init__(self, student: TrainableEncoder, *, teacher_width: int, num_targets: int) -> None:
        super().__init__()
        self._student = student
        self.student = student.encoder
        self.heads = PredictionHeads(width(student.encoder), teacher_width, num_targets)

    def forward(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        hidden_states = self._student.hidden_states(self.student, batch)
        return self.heads(hidden_states[-1])
