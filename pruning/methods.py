"""The three pruning methods as schedules the training loop asks after every optimiser step.

Each method answers `decide` with ``"prune"`` (prune now), ``"end"`` (the schedule is over) or None, applies its
pruning step (`prune`), and reports the model's sizes for the records (`sizes`). Its position is JSON
(`state_dict`), saved in every resumable state.

- `StructuredPruning` (heads, rows): the pruning steps are known from the start (`structured_steps`): the first
  after ``warmup_steps``, then one every ``every`` steps of the phase the next step belongs to, while more than
  ``until`` remain; the run ends one interval (or ``final_steps``) after the last. The study's head schedule gives
  pruning steps at 1000, 26000, ..., 126000, 166000, ..., 326000 and the end at 366000, the authors' 366,000 steps;
  its row schedule prunes at 1000, ..., 476000 and ends at 510000 (``final_steps``), as the authors' runner.
- `WeightPruning`: a plateau check ``warmup_steps`` after the start and then every ``check_every`` steps after the last
  pruning step; at a check where the loss has settled (`LossPlateau`), the next sparsity target is applied (or,
  when none is left, the run ends); otherwise the next check is ``check_every`` steps later. With ``prune_at`` (the
  steps another run pruned at, e.g. MelHuBERT's, as the study applied to wav2vec2 whose contrastive loss does not
  show convergence) it prunes at those steps instead and ends ``check_every`` steps after the last.

Every method records the steps it pruned at (``pruned_at``), which the records carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from speat_metric.adapters.base import count_parameters
from speat_metric.adapters.pruned import prunable
from speat_metric.pruning.config import Phase, ScheduleConfig
from speat_metric.pruning.structured import prune_heads, prune_rows
from speat_metric.pruning.weights import LossPlateau, WeightMasks, prunable_parameters, sparsity_targets


def structured_steps(*, warmup: int, phases: Sequence[Phase], start: int, per_step: int,
                     limit: int | None = None) -> tuple[list[int], int | None]:
    """The pruning steps of a head or row schedule, and the step at which the run ends.

    Args:
        warmup: steps before the first pruning step.
        phases: ``every``/``until`` phases, in order.
        start: what there is to prune at the start (heads in the model, or FFN dimensions per layer).
        per_step: how much one pruning step removes (from that count).
        limit: at most this many pruning steps (e.g. so that every layer keeps one head).

    Example:
        >>> steps, end = structured_steps(warmup=1000, phases=[Phase(25000, 72), Phase(40000, 12)], start=144,
        ...                               per_step=12)
        >>> steps, end
        ([1000, 26000, 51000, 76000, 101000, 126000, 166000, 206000, 246000, 286000, 326000], 366000)
    """
    steps: list[int] = []
    count, last_every = start, None
    for phase in phases:
        while count - per_step >= phase.until and (limit is None or len(steps) < limit):
            steps.append(warmup if not steps else steps[-1] + phase.every)
            count -= per_step
            last_every = phase.every
    return steps, (steps[-1] + last_every if steps else None)


class StructuredPruning:
    """Head or row pruning on a fixed schedule (see the module docstring).

    Raises:
        ValueError: the schedule has nothing to prune for this model (the message gives the sizes and limits).
    """

    structural = True

    def __init__(self, method: str, schedule: ScheduleConfig, encoder: nn.Module) -> None:
        self.method = method
        layers = prunable(encoder).layers()
        if method == "heads":
            self.per_layer = schedule.heads_per_step
            fewest = min(layer.num_heads for layer in layers)
            start, per_step, what = sum(layer.num_heads for layer in layers), self.per_layer * len(layers), "heads"
            limit = (fewest - 1) // self.per_layer
        else:
            self.per_layer = schedule.rows_per_step
            start = min(layer.ffn_dim for layer in layers)
            per_step, what, limit = self.per_layer, "FFN dimensions per layer", (start - 1) // self.per_layer
        self.steps, self.end = structured_steps(warmup=schedule.warmup_steps, phases=schedule.phases, start=start,
                                                per_step=per_step, limit=limit)
        if self.steps and schedule.final_steps is not None:  # the authors' rows runner: 476,000 + 34,000 = 510,000
            self.end = self.steps[-1] + schedule.final_steps
        if not self.steps:
            flag = "--min-heads" if method == "heads" else "--min-rows"
            raise ValueError(f"nothing to prune: the model has {start} {what}, and removing {per_step} would go below "
                             f"{schedule.phases[-1].until} ({flag}) or empty a layer; lower {flag} or "
                             f"--{method}-per-step")
        self.prunes_done = 0
        self.pruned_at: list[int] = []

    @property
    def planned_steps(self) -> int:
        return self.end

    def decide(self, step: int) -> str | None:
        if self.prunes_done < len(self.steps) and step == self.steps[self.prunes_done]:
            return "prune"
        return "end" if step >= self.end else None

    def prune(self, encoder: nn.Module, step: int) -> str:
        """Apply the next pruning step; returns what was done, for the log."""
        if self.method == "heads":
            removed = prune_heads(encoder, self.per_layer)
            summary = f"removed heads {removed} (per layer, original indices)"
        else:
            widths = prune_rows(encoder, self.per_layer)
            summary = f"FFN widths now {widths}"
        self.prunes_done += 1
        self.pruned_at.append(step)
        return f"step {step}: pruning step {self.prunes_done}/{len(self.steps)}: {summary}"

    def before_optimizer_step(self) -> None:
        pass

    def after_optimizer_step(self, step: int, loss: float) -> None:
        pass

    def masked(self) -> int:
        return 0

    def state_dict(self) -> dict[str, Any]:
        return {"prunes_done": self.prunes_done, "pruned_at": list(self.pruned_at)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prunes_done, self.pruned_at = int(state["prunes_done"]), list(state["pruned_at"])


class WeightPruning:
    """Global magnitude pruning when the loss has settled (see the module docstring)."""

    structural = False

    def __init__(self, schedule: ScheduleConfig, encoder: nn.Module) -> None:
        self.schedule = schedule
        self.masks = WeightMasks(prunable_parameters(encoder))
        self.targets = sparsity_targets(schedule.sparsity)
        self.plateau = LossPlateau(decay=schedule.ema_decay, tolerance=schedule.plateau_tolerance)
        self.prunes_done = 0
        self.pruned_at: list[int] = []
        self.next_check = schedule.warmup_steps
        self.fixed = list(schedule.prune_at)[: len(self.targets)]

    @property
    def planned_steps(self) -> int:
        """Steps if every check from now on finds a plateau (the bar's total; it grows when one does not)."""
        if self.fixed:
            return self.fixed[-1] + self.schedule.check_every
        return self.next_check + (len(self.targets) - self.prunes_done) * self.schedule.check_every

    def decide(self, step: int) -> str | None:
        if self.fixed:
            if self.prunes_done < len(self.fixed) and step == self.fixed[self.prunes_done]:
                return "prune"
            return "end" if step >= self.planned_steps else None
        if step != self.next_check:
            return None
        if self.plateau.settled():
            return "prune" if self.prunes_done < len(self.targets) else "end"
        self.next_check += self.schedule.check_every
        return None

    def prune(self, encoder: nn.Module, step: int) -> str:
        target = self.targets[self.prunes_done]
        masked = self.masks.prune_to(target)
        self.prunes_done += 1
        self.pruned_at.append(step)
        self.plateau.restart()
        self.next_check = step + self.schedule.check_every
        return (f"step {step}: pruning step {self.prunes_done}/{len(self.targets)}: sparsity {target:.3f} "
                f"({masked:,} more weights masked)")

    def before_optimizer_step(self) -> None:
        self.masks.apply_to_gradients()

    def after_optimizer_step(self, step: int, loss: float) -> None:
        self.masks.apply_to_weights()
        self.plateau.update(loss)
        if step == self.next_check - self.schedule.plateau_window:
            self.plateau.mark()

    def masked(self) -> int:
        return self.masks.masked

    def state_dict(self) -> dict[str, Any]:
        return {"prunes_done": self.prunes_done, "pruned_at": list(self.pruned_at), "next_check": self.next_check,
                "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prunes_done, self.next_check = int(state["prunes_done"]), int(state["next_check"])
        self.pruned_at = list(state["pruned_at"])
        self.plateau.load_state_dict(state["plateau"])


def build_method(method: str, schedule: ScheduleConfig, encoder: nn.Module) -> StructuredPruning | WeightPruning:
    return WeightPruning(schedule, encoder) if method == "weights" else StructuredPruning(method, schedule, encoder)


def sizes(encoder: nn.Module, method: StructuredPruning | WeightPruning, *, base_parameters: int,
          base_prunable: int) -> dict[str, Any]:
    """The compression fields that describe the model now: parameters left and removed, sparsity, layer sizes.

    Args:
        encoder: the (pruned) encoder.
        method: the method (its masks count as removed).
        base_parameters: the unpruned model's parameter count.
        base_prunable: the unpruned model's weights and biases in its transformer layers' linear layers.
    """
    layers = prunable(encoder).layers()
    prunable_now = sum(parameter.numel() for _, parameter in prunable_parameters(encoder))
    removed_prunable = base_prunable - prunable_now + method.masked()
    parameters = count_parameters(encoder) - method.masked()
    return {
        "parameters": parameters,
        "base_parameters": base_parameters,
        "parameters_removed": base_parameters - parameters,
        "sparsity": removed_prunable / base_prunable,
        "heads_per_layer": [layer.num_heads for layer in layers],
        "ffn_dims_per_layer": [layer.ffn_dim for layer in layers],
    }
