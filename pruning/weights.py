"""Weight pruning: global magnitude masks over the transformer layers' linear layers, and the pruning trigger.

`WeightMasks` holds one boolean mask per pruned tensor (the weights and biases of every linear layer inside the
transformer layers, as the authors' ``get_params_to_prune(bias=True)``). The masks start from the model's exact zeros
(except in a tensor zero throughout), so a model weight-pruned before (its masked weights saved as zeros) keeps them
at zero. `WeightMasks.prune_to` masks the smallest |w| over all of them together until exactly
``round(sparsity * total)`` entries are masked (entries masked before stay masked). During training the masks are
applied to the gradients before each optimiser step and to the weights after it, so the optimiser (and its state)
keeps working on the same tensors; a saved checkpoint holds the masked weights as zeros, so the masks are permanent
there.

`LossPlateau` is the trigger, the authors' rule: prune unless the smoothed loss fell by more than a tolerance since
its value a window earlier; the first check prunes unconditionally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from speat_metric.adapters.pruned import prunable


def prunable_parameters(encoder: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of the weights and biases of every linear layer inside the transformer layers."""
    found = []
    for number, layer in enumerate(prunable(encoder).layers()):
        for role, linear in zip(("q", "k", "v", "out", "fc1", "fc2"), layer.linears):
            found.append((f"layer{number}.{role}.weight", linear.weight))
            if linear.bias is not None:
                found.append((f"layer{number}.{role}.bias", linear.bias))
    return found


class WeightMasks:
    """Global magnitude-pruning masks over `prunable_parameters` (``True`` = kept).

    The masks start from the tensors' exact zeros (masked): a weight-pruned model given back keeps its pruned
    weights at zero instead of letting them regrow. A pretrained model has practically none; a tensor that is zero
    throughout is left unmasked, as the initial value of one never trained (the zero-initialised biases of a random
    model), which training must move.

    Example:
        >>> layer = nn.Linear(4, 2)
        >>> masks = WeightMasks([("w", layer.weight), ("b", layer.bias)])
        >>> masks.prune_to(0.5), masks.sparsity  # 5 of the 10 weights and biases masked
        (5, 0.5)
    """

    def __init__(self, parameters: Sequence[tuple[str, nn.Parameter]]) -> None:
        self.names = [name for name, _ in parameters]
        self.parameters = [parameter for _, parameter in parameters]
        self.masks = [parameter.detach() != 0 if parameter.detach().any() else torch.ones_like(parameter, dtype=bool)
                      for parameter in self.parameters]

    @property
    def total(self) -> int:
        return sum(mask.numel() for mask in self.masks)

    @property
    def masked(self) -> int:
        return sum(int((~mask).sum()) for mask in self.masks)

    @property
    def sparsity(self) -> float:
        return self.masked / self.total

    def prune_to(self, sparsity: float) -> int:
        """Mask the smallest |w| (over all tensors together) until ``round(sparsity * total)`` are masked.

        Returns:
            How many entries this call masked.

        Raises:
            ValueError: `sparsity` outside [0, 1), or below the current sparsity.
        """
        target = round(sparsity * self.total)
        if not 0 <= sparsity < 1 or target < self.masked:
            raise ValueError(f"sparsity must be in [0, 1) and not below the current {self.sparsity:.4f}, got "
                             f"{sparsity!r}")
        with torch.no_grad():
            # Masked entries score -1, below any |w|, so they stay masked; ties break by position (stable sort).
            scores = torch.cat([torch.where(mask, parameter.detach().abs().float(), -1.0).flatten().cpu()
                                for parameter, mask in zip(self.parameters, self.masks)])
            order = torch.sort(scores, stable=True).indices
            flat = torch.ones(len(scores), dtype=torch.bool)
            flat[order[:target]] = False
        before = self.masked
        offset = 0
        for index, mask in enumerate(self.masks):
            self.masks[index] = flat[offset:offset + mask.numel()].view_as(mask).to(mask.device)
            offset += mask.numel()
        self.apply_to_weights()
        return self.masked - before

    def apply_to_weights(self) -> None:
        """Zero the masked weights (after every optimiser step, and before saving)."""
        with torch.no_grad():
            for parameter, mask in zip(self.parameters, self._placed_masks()):
                parameter.mul_(mask)

    def apply_to_gradients(self) -> None:
        """Zero the gradients of masked weights (before every optimiser step)."""
        for parameter, mask in zip(self.parameters, self._placed_masks()):
            if parameter.grad is not None:
                parameter.grad.mul_(mask)

    def _placed_masks(self) -> list[torch.Tensor]:
        """The masks on their parameters' devices (moved once, when the model moved)."""
        for index, (parameter, mask) in enumerate(zip(self.parameters, self.masks)):
            if mask.device != parameter.device:
                self.masks[index] = mask.to(parameter.device)
        return self.masks

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: mask.cpu() for name, mask in zip(self.names, self.masks)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if list(state) != self.names:
            raise ValueError("the saved weight masks are for other tensors than this model's")
        self.masks = [state[name].to(mask.device).bool() for name, mask in zip(self.names, self.masks)]
        self.apply_to_weights()


def check_starting_sparsity(encoder: nn.Module, steps: Sequence, *, model: str) -> float:
    """The sparsity `encoder` starts with (its exact zeros, which stay masked); refuses a schedule below it.

    Args:
        encoder: the model before pruning.
        steps: the schedule's sparsity steps (`sparsity_targets`).
        model: the model string, for the message.

    Returns:
        The starting sparsity (0 for a pretrained model, the reached sparsity for one weight-pruned before).

    Raises:
        ValueError: the first target is not above the starting sparsity (the model was pruned further already).
    """
    start = WeightMasks(prunable_parameters(encoder)).sparsity
    first = sparsity_targets(steps)[0]
    if first <= start:
        raise ValueError(f"{model} is already {start:.2%} weight-pruned (its exact zeros stay masked), but the first "
                         f"sparsity target is {first:.2%}: give schedule.sparsity in a --config file with targets "
                         f"above it, e.g. [{{increment: {round(start + 0.05, 2)}, until: {round(start + 0.05, 2)}}}, "
                         "...]")
    return start


def sparsity_targets(steps: Sequence) -> list[float]:
    """The sparsity after each pruning step: ``[(0.2, 0.2), (0.1, 0.5)]`` -> ``[0.2, 0.3, 0.4, 0.5]``.

    Each step is ``(increment, until)`` (or an object with those attributes); targets are rounded to 1e-9.

    Example:
        >>> sparsity_targets([(0.2, 0.2), (0.1, 0.5), (0.05, 0.65), (0.025, 0.7), (0.01, 0.8)])[:9]
        [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.675, 0.7]
    """
    targets: list[float] = []
    current = 0.0
    for step in steps:
        increment, until = (step.increment, step.until) if hasattr(step, "increment") else step
        while current + increment <= until + 1e-9:
            current = round(current + increment, 9)
            targets.append(current)
        if targets and targets[-1] < until - 1e-9:  # an increment that does not divide the span: end on `until`
            current = round(until, 9)
            targets.append(current)
    return targets


@dataclass
class LossPlateau:
    """The authors' convergence trigger: prune unless the smoothed loss *fell* by more than `tolerance`.

    Follows ``update_smooth_loss``, ``update_target_smooth_loss`` and ``prune_api`` of the authors'
    ``weight_pruning/wp_utils.py`` (github.com/nervjack2/Speech-SSL-Compression, converge mode):

    - after each pruning step (and at the start) the smoothed loss starts again: the mean of the first
      `START_LOSSES` losses starts it (the loss that completes them is not averaged in, as theirs), then every loss
      moves it by ``(1 - decay)`` (a plain exponential moving average, not bias-corrected);
    - the caller marks the smoothed loss `window` steps before a check (`mark`) and asks at the check (`settled`):
      prune unless ``marked - tolerance > smoothed now``, i.e. unless the loss fell by more than the tolerance
      (a rising or flat loss prunes);
    - the first check prunes whatever the loss does: their marked value starts at -inf and is first set after
      their first pruning step, so marks before it are ignored here.

    Example:
        >>> plateau = LossPlateau(decay=0.9, tolerance=0.01)
        >>> plateau.settled()  # the first check: unconditional
        True
        >>> plateau.restart()  # after a pruning step
        >>> for loss in [2.0, 1.0, 0.0, 5.0] + [1.0] * 10:
        ...     plateau.update(loss)
        >>> plateau.mark()
        >>> for loss in [0.5] * 10:
        ...     plateau.update(loss)
        >>> plateau.settled()  # the loss fell by more than 0.01 since the mark: keep fine-tuning
        False
    """

    START_LOSSES = 3  # the authors' buffer_loss length

    decay: float
    tolerance: float
    smoothed: float | None = None
    starting: list[float] = field(default_factory=list)
    reference: float | None = None
    pruned_before: bool = False

    @property
    def value(self) -> float:
        """The smoothed loss (NaN while it is starting)."""
        return math.nan if self.smoothed is None else self.smoothed

    def update(self, loss: float) -> None:
        if self.smoothed is not None:
            self.smoothed = self.decay * self.smoothed + (1.0 - self.decay) * float(loss)
        elif len(self.starting) == self.START_LOSSES:
            self.smoothed, self.starting = sum(self.starting) / self.START_LOSSES, []
        else:
            self.starting.append(float(loss))

    def mark(self) -> None:
        """Remember the smoothed loss now, to compare with at the next check (ignored before the first pruning
        step, whose check is unconditional)."""
        if self.pruned_before:
            self.reference = self.smoothed

    def settled(self) -> bool:
        """Whether to prune: unless the smoothed loss fell by more than the tolerance since the mark (True when
        nothing was marked or nothing is smoothed yet: no fall to see)."""
        if self.reference is None or self.smoothed is None:
            return True
        return not self.reference - self.tolerance > self.smoothed

    def restart(self) -> None:
        """Start smoothing again (after a pruning step, the loss jumps); the mark stays, as theirs."""
        self.smoothed, self.starting, self.pruned_before = None, [], True

    def state_dict(self) -> dict[str, Any]:
        return {"smoothed": self.smoothed, "starting": list(self.starting), "reference": self.reference,
                "pruned_before": self.pruned_before}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "pruned_before" not in state:
            raise ValueError("this weight-pruning state was saved with the former plateau trigger (speat before "
                             "issue 25); start the run again in a new --out")
        self.smoothed, self.reference = state["smoothed"], state["reference"]
        self.starting, self.pruned_before = [float(loss) for loss in state["starting"]], bool(state["pruned_before"])
