"""Weight pruning: exact scheduled sparsities of global magnitude masks, masks that hold during training, and a
plateau trigger that fires on a plateau only."""

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
from speat_metric.pruning.weights import LossPlateau, WeightMasks, prunable_parameters, sparsity_targets

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
            values = values.round()  # many equal magnitudes, zeros among them
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


def test_the_plateau_trigger_waits_while_the_loss_falls_and_fires_on_a_plateau():
    noise = np.random.default_rng(0).normal(0, 0.002, 600)
    # 0.04 per 20-step window, beyond the 0.01 tolerance, until step 400
    falling = [1.0 + 0.002 * (400 - step) + noise[step] for step in range(400)]
    flat = [1.0 + noise[step] for step in range(400, 600)]
    pruned = _run(falling + flat)
    assert pruned, "a plateau must trigger pruning"
    assert min(pruned) > 400, f"pruned at {pruned} while the loss was still falling"
    assert _run(falling) == []


def test_a_steady_loss_prunes_at_every_check_and_a_rising_one_waits():
    assert _run([1.0] * 200)[:4] == [40, 80, 120, 160]
    rising = [1.0 + 0.002 * step for step in range(200)]
    assert _run(rising) == []
    assert not LossPlateau(decay=0.9, tolerance=0.01).settled(), "nothing marked yet"


def test_the_plateau_is_bias_corrected_and_restarts():
    plateau = LossPlateau(decay=0.99, tolerance=0.0)
    plateau.update(3.0)
    assert plateau.value == pytest.approx(3.0)
    state = plateau.state_dict()
    plateau.restart()
    assert math.isnan(plateau.value)
    plateau.load_state_dict(state)
    assert plateau.value == pytest.approx(3.0)


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
