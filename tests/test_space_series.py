"""speat_metric.space.series and plots: the curves behind each figure, and the figures drawn from them."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from test_space_fixtures import SMALL, bundled, of, pruning_sweep, shifted, with_compression

from speat_metric.space import plots, series
from speat_metric.space.rows import build_table


@pytest.fixture(scope="module")
def records():
    return bundled()


@pytest.fixture(scope="module")
def table(records):
    return build_table(with_compression(records))


def test_training_steps_follow_the_checkpoints_in_step_order(records, table):
    [run] = series.training_runs(table, "synthetic")
    curves = series.training_curves(table, [run], "synthetic")
    gender = curves.points[curves.points["test"] == "gender"]
    checkpoints = sorted((record for record in records if record.checkpoint and record.test == "gender"),
                         key=lambda record: record.checkpoint["step"])
    assert gender["x"].tolist() == [record.checkpoint["step"] for record in checkpoints]
    assert gender["d"].tolist() == pytest.approx([record.speat.effect_size for record in checkpoints])
    assert gender["ci_low"].tolist() == pytest.approx([record.speat.ci_low for record in checkpoints])


def test_pruning_against_parameters_removed_with_the_unpruned_reference(records, table):
    assert series.pruned_models(table, "synthetic") == [SMALL]
    curves = series.pruning_curves(table, SMALL, "synthetic")
    assert curves.x_label == "parameters removed"
    rows = curves.points[(curves.points["panel"] == "rows pruning") & (curves.points["test"] == "age")]
    assert rows["x"].tolist() == pytest.approx([10_000, 20_000, 30_000])
    unpruned = of(records, SMALL, "age").speat.effect_size
    assert rows["d"].tolist() == pytest.approx([unpruned - 0.2, unpruned - 0.4, unpruned - 0.6])
    assert curves.references["heads pruning"]["age"] == pytest.approx(unpruned)
    assert set(curves.points["panel"]) == {"rows pruning", "heads pruning"}


def test_a_sweeps_step_zero_is_its_unpruned_reference(records):
    sweep = pruning_sweep(records)
    start = [shifted(record, 0.05, compression={**record.compression, "step": 0, "parameters_removed": 0})
             for record in sweep if record.compression["step"] == 1]
    curves = series.pruning_curves(build_table(records + sweep + start), SMALL, "synthetic")
    gender = next(record for record in start if record.test == "gender")
    assert curves.references["rows pruning"]["gender"] == pytest.approx(gender.speat.effect_size)
    assert 0.0 in set(curves.points["x"])


def test_pruning_without_parameter_counts_falls_back_to_the_step(records):
    sweep = [record.replace(compression={"method": "weights", "step": record.compression["step"],
                                         "base_model": SMALL, "sparsity": 0.2 * record.compression["step"]},
                            model=type(record.model).from_dict({**record.model.to_dict(),
                                                                "num_parameters": of(records, SMALL, "age")
                                                                .model.num_parameters}))
             for record in pruning_sweep(records, "weights")]
    curves = series.pruning_curves(build_table(records + sweep), SMALL, "synthetic")
    assert curves.x_label == "pruning step" and sorted(set(curves.points["x"])) == [1, 2, 3]


def test_distillation_depths_beside_the_teacher(records, table):
    assert series.distilled_models(table, "synthetic") == [SMALL]
    curves = series.distillation_curves(table, SMALL, "synthetic")
    gender = curves.points[curves.points["test"] == "gender"]
    assert [str(x) for x in gender["x"]] == ["base", "2 layers", "4 layers"]
    teacher = of(records, SMALL, "gender").speat.effect_size
    assert gender["d"].tolist() == pytest.approx([teacher, teacher + 0.2, teacher + 0.4])


def test_layers_of_one_model_with_the_mean_over_layers_as_reference(records, table):
    assert "random:melhubert-small" in series.layered_models(table, "synthetic")
    curves = series.layer_curves(table, "random:melhubert-small", "synthetic")
    native = curves.points[curves.points["test"] == "native"]
    layers = sorted(record.pooling["layer"] for record in records
                    if record.model.name == "random:melhubert-small" and record.test == "native"
                    and record.pooling["layer"] is not None)
    assert native["x"].tolist() == layers
    assert curves.references[""]["native"] == pytest.approx(of(records, "random:melhubert-small",
                                                               "native").speat.effect_size)


def test_association_scores_give_back_the_records_d_and_each_targets_influence(records):
    record = of(records, "random:melhubert-small", "gender")
    frame = series.association_frame(record)
    s_x = np.array([entry["s"] for entry in record.association_scores["X"]])
    s_y = np.array([entry["s"] for entry in record.association_scores["Y"]])
    pooled = np.concatenate([s_x, s_y])
    manual_d = (s_x.mean() - s_y.mean()) / np.sqrt(((pooled - pooled.mean()) ** 2).sum() / (len(pooled) - 1))
    assert series.recomputed_effect_size(frame) == pytest.approx(manual_d, rel=1e-12)
    assert manual_d == pytest.approx(record.speat.effect_size, rel=1e-9)
    top = frame.iloc[0]
    rest_x = s_x if top["role"] == "Y" else np.delete(s_x, list(s_x).index(top["s(w)"]))
    rest_y = s_y if top["role"] == "X" else np.delete(s_y, list(s_y).index(top["s(w)"]))
    rest = np.concatenate([rest_x, rest_y])
    without = (rest_x.mean() - rest_y.mean()) / rest.std(ddof=1)
    assert top["influence on d"] == pytest.approx(record.speat.effect_size - without, rel=1e-9)
    assert frame["influence on d"].abs().is_monotonic_decreasing
    assert series.association_frame(record.replace(association_scores=None)) is None


def test_figures_draw_every_series_with_its_interval(table):
    curves = series.pruning_curves(table, SMALL, "synthetic")
    figure = plots.curve_figure(curves, title="pruning", band=False)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert all(len(axes.containers) == 3 for axes in figure.axes)  # one error-bar series per test
    assert all(len([line for line in axes.lines if line.get_linestyle() == "--"]) == 3 for axes in figure.axes)
    training = plots.curve_figure(series.training_curves(table, series.training_runs(table, "synthetic"),
                                                         "synthetic"), title="steps", facet="test",
                                  colour_by="series")
    assert len(training.axes) == 3 and all(axes.collections for axes in training.axes)  # CI bands
    empty = plots.curve_figure(series.training_curves(table, [], "real"), title="x", empty_message="nothing here")
    assert empty.axes[0].texts[0].get_text() == "nothing here"
    frame = series.association_frame(table.records[0])
    scatter = plots.association_figure(frame, title="scores")
    assert sum(len(collection.get_offsets()) for collection in scatter.axes[0].collections) == len(frame)


def test_the_bundled_compression_runs_feed_the_pruning_and_distillation_views():
    """The bundle carries real `speat prune` and `speat distill` runs of the small wav2vec2 (made by
    scripts/make_example_records.py): the Space shows them without any derived record."""
    records = bundled(compressed=True)
    table = build_table(records)
    assert series.pruned_models(table, "synthetic") == [SMALL]
    pruning = series.pruning_curves(table, SMALL, "synthetic")
    pruned = [record for record in records if record.compression and record.compression["method"] != "distill"]
    assert set(pruning.points["panel"]) == {f"{record.compression['method']} pruning" for record in pruned}
    assert pruning.x_label == "parameters removed"
    assert sorted(set(pruning.points["x"])) == pytest.approx(
        sorted({record.compression["parameters_removed"] for record in pruned}))
    step_zero = next(record for record in pruned if record.compression["step"] == 0 and record.test == "age")
    assert pruning.references[f"{step_zero.compression['method']} pruning"]["age"] == step_zero.speat.effect_size
    assert series.distilled_models(table, "synthetic") == [SMALL]
    distillation = series.distillation_curves(table, SMALL, "synthetic")
    depths = sorted({record.compression["layers"] for record in records
                     if record.compression and record.compression["method"] == "distill"})
    gender = distillation.points[distillation.points["test"] == "gender"]
    assert [str(x) for x in gender["x"]] == ["base"] + [f"{depth} layer{'s' * (depth > 1)}" for depth in depths]
    last = {record.compression["layers"]: record for record in sorted(
        (record for record in records if record.compression and record.compression["method"] == "distill"
         and record.test == "gender"), key=lambda record: record.compression["step"])}
    assert gender["d"].tolist()[1:] == pytest.approx([last[depth].speat.effect_size for depth in depths])
