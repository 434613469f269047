"""Weight pruning: exact scheduled sparsities of global magnitude masks, masks that hold during training (also the
zeros of a model weight-pruned before), and the authors' trigger (prune unless the smoothed loss fell), checked step
by step against an independent transcription of their code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import MELHUBERT
from torch import nn

from speat_metric.adapters.melhubert import MelHuBERTModel
from speat_metric.pruning.config import ScheduleConfig, SparsityStep
from speat_metric.pruning.methods import WeightPruning
from speat_metric.pruning.weights import (
    LossPlateau,
    WeightMasks,
    check_starting_sparsity,
    prunable_parameters,
    sparsity_targets,
)

# The authors' weight_pruning/config/config_runner_prune.yaml, up to the study's 80%.
AUTHORS_SPARSITIES = [.2, .3, .4, .5, .55, .6, .65, .675, .7, .71, .72, .73, .74, .75, .76, .77, .78, .79, .8]
STUDY_STEPS = [(0.20, 0.20), (0.10, 0.50), (0.05, 0.65), (0.025, 0.70), (0.01, 0.80)]


def test_the_study_schedule_gives_the_authors_sparsities():
    assert sparsity_targets(STUDY_STEPS) == pytest.approx(AUTHORS_SPARSITIES, abs=1e-12)
    assert sparsity_targets([(0.3, 0.5)]) == [0.3, 0.5]  # an increment that does not divide the span ends on it


@settings(max_examples=25, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(1, 7), st.integers(1, 9)), min_size=1, max_size=4),
       seed=st.integers(0, 2**16), ties=st.booleans())
def test_masks_reach_each_scheduled_sparsity_exactly_by_smallest_magnitude(shapes, seed, ties):
    generator = torch.Generator().manual_seed(seed)
    parameters = []
    for index, shape in enumerate(shapes):
        values = torch.randn(shape, generator=generator)
        if ties:
            values = values.round() + 0.5 * values.sign()  # many equal magnitudes (no zeros: they start masked)
        parameters.append((f"p{index}", nn.Parameter(values)))
    masks = WeightMasks(parameters)
    original = torch.cat([parameter.detach().abs().flatten() for _, parameter in parameters])
    previous = torch.ones(masks.total, dtype=torch.bool)
    for target in sparsity_targets(STUDY_STEPS):
        masks.prune_to(target)
        kept = torch.cat([mask.flatten() for mask in masks.masks])
        assert int((~kept).sum()) == round(target * masks.total)
        assert not bool((kept & ~previous).any()), "a masked weight came back"
        newly = previous & ~kept
        if newly.any() and kept.any():
            assert float(original[newly].max()) <= float(original[kept].min())
        assert not any(parameter.detach()[~mask].any() for (_, parameter), mask in zip(parameters, masks.masks))
        previous = kept


def test_masked_weights_stay_zero_through_adam_steps_and_the_optimiser_keeps_its_tensors():
    torch.manual_seed(0)
    layer = nn.Linear(6, 5)
    masks = WeightMasks([("weight", layer.weight), ("bias", layer.bias)])
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    for step in range(6):
        if step == 2:
            masks.prune_to(0.5)
        loss = layer(torch.randn(8, 6)).pow(2).sum()
        loss.backward()
        masks.apply_to_gradients()
        optimizer.step()
        optimizer.zero_grad()
        masks.apply_to_weights()
    assert not layer.weight.detach()[~masks.masks[0]].any() and not layer.bias.detach()[~masks.masks[1]].any()
    assert optimizer.state[layer.weight]["exp_avg"].shape == layer.weight.shape
    assert masks.sparsity == round(0.5 * 35) / 35


def test_masks_round_trip_and_refuse_other_tensors():
    model = MelHuBERTModel(MELHUBERT)
    masks = WeightMasks(prunable_parameters(model))
    masks.prune_to(0.3)
    other = WeightMasks(prunable_parameters(MelHuBERTModel(MELHUBERT)))
    other.load_state_dict(masks.state_dict())
    assert other.masked == masks.masked
    assert all(torch.equal(a, b) for a, b in zip(other.masks, masks.masks))
    with pytest.raises(ValueError, match="for other tensors"):
        WeightMasks(prunable_parameters(model)[:3]).load_state_dict(masks.state_dict())
    with pytest.raises(ValueError, match="not below the current"):
        masks.prune_to(0.1)


def test_prunable_parameters_are_the_weights_and_biases_of_every_linear_layer_of_the_transformer_layers():
    model = MelHuBERTModel(MELHUBERT)
    expected = {parameter for layer in model.encoder.layers for module in layer.modules()
                if isinstance(module, nn.Linear) for parameter in module.parameters()}
    found = [parameter for _, parameter in prunable_parameters(model)]
    assert set(found) == expected and len(found) == len(expected) == 2 * 6 * 2


def _run(losses, *, decay=0.9, tolerance=0.01, warmup=40, check_every=40, window=20):
    """Feed a loss sequence to the weights schedule; returns the steps at which it pruned."""
    schedule = ScheduleConfig(warmup_steps=warmup, check_every=check_every, plateau_window=window,
                              plateau_tolerance=tolerance, ema_decay=decay,
                              sparsity=(SparsityStep(0.1, 0.9),))
    method = WeightPruning(schedule, MelHuBERTModel(MELHUBERT))
    pruned = []
    for step, loss in enumerate(losses, start=1):
        method.after_optimizer_step(step, loss)
        decision = method.decide(step)
        if decision == "prune":
            method.prune(MelHuBERTModel(MELHUBERT), step)
            pruned.append(step)
        elif decision == "end":
            break
    return pruned


def test_the_trigger_waits_while_the_loss_falls_and_prunes_when_it_stops_falling():
    noise = np.random.default_rng(0).normal(0, 0.002, 600)
    # 0.04 per 20-step window, beyond the 0.01 tolerance, until step 400
    falling = [1.0 + 0.002 * (400 - step) + noise[step] for step in range(400)]
    flat = [1.0 + noise[step] for step in range(400, 600)]
    pruned = _run(falling + flat)
    assert pruned[0] == 40, "the first check prunes whatever the loss does (the authors' target starts at -inf)"
    assert len(pruned) > 1 and min(pruned[1:]) > 400, f"pruned at {pruned} while the loss was still falling"
    assert _run(falling) == [40]


def test_a_steady_or_rising_loss_prunes_at_every_check():
    assert _run([1.0] * 200)[:4] == [40, 80, 120, 160]
    assert _run([1.0 + 0.002 * step for step in range(200)])[:4] == [40, 80, 120, 160], "only a fall waits"
    assert LossPlateau(decay=0.9, tolerance=0.01).settled(), "the first check is unconditional"


def test_the_smoothed_loss_starts_from_the_mean_of_three_losses_and_restarts():
    plateau = LossPlateau(decay=0.5, tolerance=0.0)
    for loss in (1.0, 2.0, 6.0):
        plateau.update(loss)
    assert math.isnan(plateau.value), "still starting"
    plateau.update(100.0)  # completes the start and, as the authors' buffer, is not averaged in
    assert plateau.value == pytest.approx(3.0)
    plateau.update(5.0)
    assert plateau.value == pytest.approx(4.0)  # 0.5 * 3 + 0.5 * 5: not bias-corrected
    state = plateau.state_dict()
    plateau.restart()
    assert math.isnan(plateau.value)
    plateau.load_state_dict(state)
    assert plateau.value == pytest.approx(4.0) and not plateau.pruned_before
    with pytest.raises(ValueError, match="former plateau trigger"):
        plateau.load_state_dict({"average": 1.0, "count": 3, "reference": None})


class AuthorsTrigger:
    """The authors' converge-mode decision, transcribed from github.com/nervjack2/Speech-SSL-Compression
    (weight_pruning/wp_utils.py: update_smooth_loss, update_target_smooth_loss, prune_api; runner.py: the loop that
    calls prune_api at the steps of prune_steps and appends one period when it answers "not-converge")."""

    def __init__(self, *, warnup: int, period: int, n_iters: int, avg_len: int, con_tol: float, smooth_factor: float):
        self.warnup, self.period, self.avg_len, self.con_tol = warnup, period, avg_len, con_tol
        self.smooth_factor = smooth_factor
        self.prune_steps = [warnup + n * period for n in range(n_iters)]
        self.smooth_loss, self.tgt_smooth_loss, self.buffer_loss, self.pruning_times = None, -float("inf"), [], 0

    def loop_top(self, global_step: int) -> str | None:
        """runner.py, before each step: prune_api at the scheduled steps."""
        if global_step not in self.prune_steps:
            return None
        if self.tgt_smooth_loss - self.con_tol > self.smooth_loss:
            self.prune_steps.append(max(self.prune_steps) + self.period)
            return "not-converge"
        self.pruning_times += 1
        self.smooth_loss = None
        return "pruned"

    def after_loss(self, global_step: int, batch_loss: float) -> None:
        """runner.py, after each backward: update_smooth_loss, then update_target_smooth_loss."""
        if self.smooth_loss is not None:
            self.smooth_loss = self.smooth_loss * self.smooth_factor + batch_loss * (1 - self.smooth_factor)
        elif len(self.buffer_loss) == 3:
            self.smooth_loss = sum(self.buffer_loss) / 3
            self.buffer_loss = []
        else:
            self.buffer_loss.append(batch_loss)
        if global_step > self.warnup and (global_step - self.warnup + self.avg_len) in self.prune_steps:
            self.tgt_smooth_loss = self.smooth_loss


def test_the_trigger_takes_the_authors_decision_at_every_check():
    # The authors' shape of schedule (warnup = period, average_length 3/5 of it), shortened; a scripted noisy loss
    # that jumps after each pruning step and recovers at a different speed each time, so that some checks find it
    # still falling, and with a rising stretch (which the authors' rule prunes on).
    warmup, period, window, tolerance, decay, targets = 40, 40, 24, 0.01, 0.95, 10
    schedule = ScheduleConfig(warmup_steps=warmup, check_every=period, plateau_window=window,
                              plateau_tolerance=tolerance, ema_decay=decay, sparsity=(SparsityStep(0.05, 0.5),))
    model = MelHuBERTModel(MELHUBERT)
    ours = WeightPruning(schedule, model)
    assert len(ours.targets) == targets
    theirs = AuthorsTrigger(warnup=warmup, period=period, n_iters=targets, avg_len=window, con_tol=tolerance,
                            smooth_factor=decay)
    noise = np.random.default_rng(3).normal(0, 0.004, 2000)
    recovery = [15, 60, 5, 150, 8, 90, 20, 200, 10, 30, 40]  # steps for the jump to decay, per pruning step
    ours_checks, their_checks, last_prune = [], [], 0
    for step in range(1, 2000):
        their_decision = theirs.loop_top(step - 1)  # their check of step s runs at the top of step s + 1
        if their_decision:
            their_checks.append((step - 1, their_decision == "pruned"))
        since, done = step - last_prune, len(ours.pruned_at)
        loss = 1.0 + 0.3 * math.exp(-since / recovery[done]) + noise[step]  # still falling at the first check
        if done == 2 and since > 20:
            loss += 0.002 * (since - 20)  # rising after the second pruning step: their rule prunes on it
        theirs.after_loss(step, loss)
        ours.after_optimizer_step(step, loss)
        check = step == ours.next_check
        decision = ours.decide(step)
        if check and decision != "end":
            ours_checks.append((step, decision == "prune"))
        if decision == "prune":
            ours.prune(model, step)
            last_prune = step
        if decision == "end" or theirs.pruning_times == targets:
            break
    assert ours_checks == their_checks
    outcomes = {pruned for _, pruned in ours_checks}
    assert outcomes == {True, False}, "the sequence must exercise both decisions"
    assert ours.prunes_done == targets and ours_checks[0] == (warmup, True)


def test_a_weight_pruned_model_given_back_keeps_its_zeros_through_training():
    torch.manual_seed(0)
    model = MelHuBERTModel(MELHUBERT)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # 60% zeros at random positions, as a model pruned elsewhere could have them
        for _, parameter in prunable_parameters(model):
            kept = torch.rand(parameter.shape, generator=generator) > 0.6
            parameter.add_(0.1 * parameter.sign() + 0.01).mul_(kept)  # no zeros but these
    zeros = [parameter.detach() == 0 for _, parameter in prunable_parameters(model)]
    fraction = sum(int(zero.sum()) for zero in zeros) / sum(zero.numel() for zero in zeros)
    assert check_starting_sparsity(model, [(0.65, 0.65)], model="m") == pytest.approx(fraction)
    with pytest.raises(ValueError, match=r"m is already \d\d\.\d\d% weight-pruned .* first sparsity target is 20\.00%"):
        check_starting_sparsity(model, STUDY_STEPS, model="m")

    schedule = ScheduleConfig(warmup_steps=3, check_every=3, plateau_window=1, plateau_tolerance=0.0, ema_decay=0.9,
                              sparsity=(SparsityStep(0.65, 0.65), SparsityStep(0.05, 0.75)))
    method = WeightPruning(schedule, model)
    assert method.masks.sparsity == pytest.approx(fraction)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    features = torch.randn(2, 12, MELHUBERT.feat_emb_dim, generator=generator)
    goal = torch.randn(2, 12, MELHUBERT.encoder_embed_dim, generator=generator)
    for step in range(1, 7):  # as the training loop: masked gradients, step, masked weights, maybe prune
        loss = (model(features, torch.ones(2, 12, dtype=torch.bool))[-1] - goal).pow(2).mean()
        loss.backward()
        method.before_optimizer_step()
        optimizer.step()
        optimizer.zero_grad()
        method.after_optimizer_step(step, loss.item())
        if step == 2:  # trained, not pruned yet: nothing has re-masked a regrown zero
            assert all(not parameter.detach()[zero].any()
                       for (_, parameter), zero in zip(prunable_parameters(model), zeros)), "a zero regrew"
        if method.decide(step) == "prune":
            method.prune(model, step)
    assert method.pruned_at == [3, 6]
    for (name, parameter), zero in zip(prunable_parameters(model), zeros):
        assert not parameter.detach()[zero].any(), f"{name}: a zero of the given model regrew"
    assert method.masks.sparsity == pytest.approx(0.70, abs=1e-3)  # targets 0.65, 0.70 (, 0.75 not reached)


def test_a_tensor_zero_throughout_is_an_initial_value_not_a_pruned_one():
    layer = nn.Linear(3, 4)
    with torch.no_grad():
        layer.bias.zero_()  # zero-initialised, as a random model's
        layer.weight[0, :2] = 0.0  # two pruned weights
    masks = WeightMasks([("weight", layer.weight), ("bias", layer.bias)])
    assert masks.masks[1].all() and masks.masked == 2 and (~masks.masks[0]).nonzero().tolist() == [[0, 0], [0, 1]]


def test_without_masks_the_zeros_of_a_pruned_model_regrow():
    """The control of the test above: the same training with no masks un-prunes the model."""
    layer = nn.Linear(8, 8)
    with torch.no_grad():
        layer.weight.mul_(torch.arange(64).view(8, 8) % 5 != 0)
    zero = layer.weight.detach() == 0
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)
    layer(torch.randn(4, 8)).pow(2).sum().backward()
    optimizer.step()
    assert layer.weight.detach()[zero].ne(0).float().mean() > 0.5


def test_recorded_steps_replace_the_plateau_trigger():
    schedule = ScheduleConfig(warmup_steps=40, check_every=40, plateau_window=20, plateau_tolerance=0.0,
                              ema_decay=0.9, sparsity=(SparsityStep(0.1, 0.3),), prune_at=(5, 9, 30, 77))
    model = MelHuBERTModel(MELHUBERT)
    method = WeightPruning(schedule, model)
    decisions = {}
    for step in range(1, 200):
        method.after_optimizer_step(step, float(step))  # a loss that never settles
        decision = method.decide(step)
        if decision == "prune":
            method.prune(model, step)
        if decision:
            decisions[step] = decision
        if decision == "end":
            break
    assert decisions == {5: "prune", 9: "prune", 30: "prune", 70: "end"}, "three targets: the fourth step is unused"
    assert method.pruned_at == [5, 9, 30] and method.masks.sparsity == pytest.approx(0.3, abs=1e-3)
