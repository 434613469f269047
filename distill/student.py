"""Students of a teacher (DistilHuBERT, S3PRL's distiller): the teacher's front end and first layers, plus heads.

`build_student` copies the teacher's encoder and keeps its first ``layers`` transformer layers: the front end (the
CNN of wav2vec2-family models, MelHuBERT's Mel input projection), the feature projection, the convolutional position
embedding and the encoder's layer norm come along unchanged (``init_teacher_conv_layers`` and
``init_teacher_encoder_layers``), so before training the student's first hidden states are the teacher's. The
student is an ordinary model of the teacher's kind with fewer layers: it is saved as a transformers directory or a
MelHuBERT checkpoint (`speat_metric.training.models.TrainableEncoder.save`), which ``speat evaluate`` and
``from_pretrained`` read.

`DistillationModel` is what is trained: the student and its prediction heads, S3PRL's ``output_layer`` for
``out_layer_type: expand-last`` (s3prl/s3prl, ``s3prl/upstream/distiller/model.py`` and ``module.py``):
``Linear(D, D * N) -> GELU -> SplitLinear``, i.e. a two-layer MLP of hidden width D (the student's) per target, N the
number of teacher layers predicted. The heads are training-only: they are never saved with the student.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

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


class SplitLinear(nn.Module):
    """N independent linear maps, the n-th applied to the n-th of N consecutive slices of the input (S3PRL's
    ``SplitLinear``, initialised as it is: weights and biases uniform in +-1/sqrt(in_features))."""

    def __init__(self, in_features: int, splits: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.splits, self.out_features = in_features, splits, out_features
        bound = in_features ** -0.5
        self.weight = nn.Parameter(torch.empty(splits, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(splits, out_features).uniform_(-bound, bound))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(..., splits * in_features) -> (..., splits, out_features)."""
        slices = inputs.unflatten(-1, (self.splits, self.in_features))
        return torch.einsum("...ni,nio->...no", slices, self.weight) + self.bias


class PredictionHeads(nn.Module):
    """S3PRL's ``output_layer``: ``Linear(D, D * N) -> GELU -> SplitLinear(D, N, teacher width)``, one two-layer
    MLP per target (the first linear layer holds the N first layers side by side)."""

    def __init__(self, student_width: int, teacher_width: int, num_targets: int) -> None:
        super().__init__()
        self.expand = nn.Linear(student_width, student_width * num_targets)
        self.activation = nn.GELU()
        self.split = SplitLinear(student_width, num_targets, teacher_width)

    def forward(self, last_hidden_state: torch.Tensor) -> list[torch.Tensor]:
        """One (batch, frames, teacher width) prediction per target, in the order of the targets."""
        return list(self.split(self.activation(self.expand(last_hidden_state))).unbind(-2))


HEADS_PREFIX = "heads."
"""Where the heads' parameters sit in `DistillationModel`'s state dict (and so in a resumable state)."""


def head_parameter_names() -> set[str]:
    """The heads' state-dict keys in a `DistillationModel` (the same for every width and number of targets)."""
    return {HEADS_PREFIX + name for name in PredictionHeads(1, 1, 1).state_dict()}


def check_saved_heads(saved_names: Iterable[str], *, state: str | Path) -> None:
    """A resumable state holds heads of this layout (the model's state-dict keys `saved_names`).

    States saved before the heads became S3PRL's two-layer MLPs hold ``heads.heads.<n>.1.weight`` (GELU then one
    linear layer per target); loading them would fail deep in ``load_state_dict`` with a list of missing keys.

    Raises:
        ValueError: one line naming the state and what to do.
    """
    found = {name.removeprefix("module.") for name in saved_names}  # DDP-wrapped models save "module.heads..."
    found = {name for name in found if name.startswith(HEADS_PREFIX)}
    if found != head_parameter_names():
        raise ValueError(f"--resume {state}: the state holds prediction heads of another layout "
                         f"({', '.join(sorted(found)[:2]) or 'none'}{', ...' if len(found) > 2 else ''}), saved before "
                         "the heads became S3PRL's Linear -> GELU -> SplitLinear; it cannot be resumed: start a new "
                         "run with another --out (the student checkpoints already saved stay valid)")


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
