"""Head and row pruning: the scores against a direct computation, and the study's schedules step by step."""

from __future__ import annotations

import pytest
import torch
from tiny_models import MELHUBERT

from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel
from speat_metric.adapters.pruned import prunable
from speat_metric.pruning.config import Phase, ScheduleConfig, load_config
from speat_metric.pruning.methods import StructuredPruning, sizes, structured_steps
from speat_metric.pruning.structured import head_scores, lowest, row_scores
from speat_metric.pruning.weights import prunable_parameters

# The authors' head_pruning/config/l1/config_runner.yaml: interval, warm_up and total_steps.
AUTHORS_HEAD_INTERVALS = [0, 25000, 50000, 75000, 100000, 125000, 165000, 205000, 245000, 285000, 325000]
AUTHORS_WARM_UP, AUTHORS_TOTAL_STEPS = 1000, 366000


def test_head_scores_are_the_l1_norms_of_each_heads_query_key_and_value():
    torch.manual_seed(0)
    layer = prunable(MelHuBERTModel(MELHUBERT)).layers()[0]
    with torch.no_grad():
        for linear in (layer.query, layer.key, layer.value):
            linear.bias.normal_()
    linears = [(linear.weight.detach().tolist(), linear.bias.detach().tolist())
               for linear in (layer.query, layer.key, layer.value)]
    expected = []
    for head in range(4):
        rows = range(head * 8, head * 8 + 8)
        expected.append(sum(abs(weight[row][column]) + (abs(bias[row]) if column == 0 else 0.0)
                            for weight, bias in linears for row in rows for column in range(32)))
    assert head_scores(layer).tolist() == pytest.approx(expected, rel=1e-6)


def test_row_scores_are_the_l1_norms_of_fc1_row_and_bias_plus_fc2_column():
    torch.manual_seed(0)
    layer = prunable(MelHuBERTModel(MELHUBERT)).layers()[1]
    with torch.no_grad():
        layer.intermediate.bias.normal_()
    fc1, bias, fc2 = layer.intermediate.weight.detach(), layer.intermediate.bias.detach(), layer.output.weight.detach()
    expected = [float(fc1[row].abs().sum() + bias[row].abs() + fc2[:, row].abs().sum()) for row in range(64)]
    assert row_scores(layer).tolist() == pytest.approx(expected, rel=1e-6)


def test_lowest_breaks_ties_by_position():
    assert lowest(torch.tensor([3.0, 1.0, 1.0, 0.5]), 2) == [1, 3]


def test_the_study_head_schedule_is_the_authors_one():
    config = load_config("heads", model="m", out="o", data="d")
    steps, end = structured_steps(warmup=config.schedule.warmup_steps, phases=config.schedule.phases, start=144,
                                  per_step=12)
    assert steps == [AUTHORS_WARM_UP + interval for interval in AUTHORS_HEAD_INTERVALS]
    assert end == AUTHORS_TOTAL_STEPS
    assert 144 - 12 * 6 == 72 and 144 - 12 * len(steps) == 12  # 72 heads after phase one, 12 at the end


def test_the_study_row_schedule_takes_a_3072_wide_ffn_to_512():
    config = load_config("rows", model="m", out="o", data="d")
    steps, end = structured_steps(warmup=config.schedule.warmup_steps, phases=config.schedule.phases, start=3072,
                                  per_step=config.schedule.rows_per_step)
    assert len(steps) == (3072 - 512) // 128 == 20
    assert steps[:3] == [1000, 26000, 51000] and end == steps[-1] + 25000


def test_the_rows_recipe_ends_at_the_authors_510000_steps():
    # the authors' row_pruning/config/config_runner_20ms.yaml: interval [0, 25000, ..., 475000] after warm_up 1000,
    # total_steps 510000
    config = load_config("rows", model="m", out="o", data="d")
    model = MelHuBERTModel(MelHuBERTConfig(encoder_layers=1, encoder_embed_dim=8, encoder_ffn_embed_dim=3072,
                                           encoder_attention_heads=2, conv_pos=8, conv_pos_groups=4,
                                           num_cluster=4))
    method = StructuredPruning("rows", config.schedule, model)
    assert method.steps == [1000 + interval for interval in range(0, 475001, 25000)]
    assert method.planned_steps == 510_000 and method.decide(509_999) is None and method.decide(510_000) == "end"


def test_a_structured_method_prunes_at_its_steps_then_ends():
    model = MelHuBERTModel(MELHUBERT)
    schedule = ScheduleConfig(warmup_steps=2, phases=(Phase(3, 6), Phase(5, 2)), heads_per_step=1)
    method = StructuredPruning("heads", schedule, model)
    decisions = {}
    for step in range(1, 20):
        decision = method.decide(step)
        if decision == "prune":
            method.prune(model, step)
        if decision:
            decisions[step] = decision
        if decision == "end":
            break
    # 8 heads, 2 per pruning step: 8 -> 6 at 2 (phase one), -> 4 at 7 and -> 2 at 12 (phase two), end at 17
    assert decisions == {2: "prune", 7: "prune", 12: "prune", 17: "end"}
    assert [layer.num_heads for layer in prunable(model).layers()] == [1, 1]


def test_sizes_count_what_was_removed():
    model = MelHuBERTModel(MELHUBERT)
    base = sum(parameter.numel() for parameter in model.parameters())
    prunable = sum(parameter.numel() for _, parameter in prunable_parameters(model))
    method = StructuredPruning("rows", ScheduleConfig(warmup_steps=1, phases=(Phase(1, 32),), rows_per_step=16), model)
    method.prune(model, 1)
    found = sizes(model, method, base_parameters=base, base_prunable=prunable)
    removed = 2 * 16 * (32 + 1 + 32)
    assert found["parameters_removed"] == removed and found["parameters"] == base - removed
    assert found["sparsity"] == pytest.approx(removed / prunable)
    assert found["ffn_dims_per_layer"] == [48, 48] and found["heads_per_layer"] == [4, 4]


def test_nothing_to_prune_is_a_clear_error():
    model = MelHuBERTModel(MelHuBERTConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                                           encoder_attention_heads=4, conv_pos=8, conv_pos_groups=4))
    with pytest.raises(ValueError, match=r"nothing to prune: the model has 8 heads, and removing 2 would go below 12 "
                                         r"\(--min-heads\)"):
        StructuredPruning("heads", ScheduleConfig(warmup_steps=1, phases=(Phase(10, 12),), heads_per_step=1), model)
    # a layer keeps at least one head whatever the limit says
    method = StructuredPruning("heads", ScheduleConfig(warmup_steps=1, phases=(Phase(10, 1),), heads_per_step=1),
                               model)
    assert len(method.steps) == 3
