"""Weight pruning: global magnitude masks over the transformer layers' linear layers, and the loss-plateau trigger.

`WeightMasks` holds one boolean mask per pruned tensor (the weights and biases of every linear layer inside the
transformer layers, as the authors' ``get_params_to_prune(bias=True)``). `WeightMasks.prune_to` masks the smallest
|w| over all of them together until exactly ``round(sparsity * total)`` entries are masked (entries masked before stay
masked). During training the masks are applied to the gradients before each optimiser step and to the weights after
it, so the optimiser (and its state) keeps working on the same tensors; a saved checkpoint holds the masked weights
as zeros, so the masks are permanent there.

`LossPlateau` is the trigger: a bias-corrected exponential moving average of the loss, restarted after each
pruning step, compared with its value a window earlier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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

    Example:
        >>> layer = nn.Linear(4, 2)
        >>> masks = WeightMasks([("w", layer.weight), ("b", layer.bias)])
        >>> masks.prune_to(0.5), masks.sparsity  # 5 of the 10 weights and biases masked
        (5, 0.5)
    """

    def __init__(self, parameters: Sequence[tuple[str, nn.Parameter]]) -> None:
        self.names = [name for name, _ in parameters]
        self.parameters = [parameter for _, parameter in parameters]
        self.masks = [torch.ones_like(parameter, dtype=torch.bool) for parameter in self.parameters]

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
    """Whether the loss has stopped moving: its EMA now is within `tolerance` of its EMA `window` steps earlier.

    The EMA is bias-corrected (``ema / (1 - decay**n)`` after n losses), so it is meaningful from the first loss.
    The caller says when a check is due: it calls `mark` `window` steps before the check and `settled` at the check.

    Example:
        >>> plateau = LossPlateau(decay=0.9, tolerance=0.01)
        >>> for _ in range(50):
        ...     plateau.update(1.0)
        >>> plateau.mark()
        >>> for _ in range(50):
        ...     plateau.update(1.0)
        >>> plateau.settled()
        True
    """

    decay: float
    tolerance: float
    average: float = 0.0
    count: int = 0
    reference: float | None = None

    @property
    def value(self) -> float:
        """The bias-corrected EMA (NaN before the first loss)."""
        return self.average / (1.0 - self.decay**self.count) if self.count else math.nan

    def update(self, loss: float) -> None:
        self.average = self.decay * self.average + (1.0 - self.decay) * float(loss)
        self.count += 1

    def mark(self) -> None:
        """Remember the EMA now, to compare with at the next check."""
        self.reference = self.value

    def settled(self) -> bool:
        """True when the EMA is within the tolerance of the marked value (False when nothing was marked)."""
        if self.reference is None or self.count == 0:
            return False
        return abs(self.value - self.reference) <= self.tolerance

    def restart(self) -> None:
        """Forget the losses (after a pruning step, the loss jumps)."""
        self.average, self.count, self.reference = 0.0, 0, None

    def state_dict(self) -> dict[str, float | int | None]:
        return {"average": self.average, "count": self.count, "reference": self.reference}

    def load_state_dict(self, state: dict) -> None:
        self.average, self.count, self.reference = float(state["average"]), int(state["count"]), state["reference"]
