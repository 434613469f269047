"""Pruning configuration: the study's hyperparameters as defaults, overrides, and errors that name the setting."""

from __future__ import annotations

import argparse

import pytest
import yaml

from speat_metric.cli import build_parser
from speat_metric.pruning.cli import run_config
from speat_metric.pruning.config import CONFIG_DIRECTORY, ConfigError, load_config, read_run_config


def test_the_defaults_are_the_studys_hyperparameters():
    heads = load_config("heads", model="m", out="o", data="d")
    rows = load_config("rows", model="m", out="o", data="d")
    weights = load_config("weights", model="m", out="o", data="d")
    assert heads.optimizer.lr == 5e-5 and rows.optimizer.lr == weights.optimizer.lr == 1e-5
    assert heads.schedule.heads_per_step == 1 and [(p.every, p.until) for p in heads.schedule.phases] == [
        (25000, 72), (40000, 12)]
    assert rows.schedule.rows_per_step == 128 and [(p.every, p.until) for p in rows.schedule.phases] == [(25000, 512)]
    assert (weights.schedule.ema_decay, weights.schedule.plateau_tolerance, weights.schedule.plateau_window) == (
        0.9998, 0.001, 15000)
    assert [(step.increment, step.until) for step in weights.schedule.sparsity] == [
        (0.2, 0.2), (0.1, 0.5), (0.05, 0.65), (0.025, 0.7), (0.01, 0.8)]
    # the authors' row runner (config_runner_20ms.yaml): last of 20 pruning steps at 1000 + 475000, total_steps 510000
    assert 1000 + 19 * 25000 + rows.schedule.final_steps == 510_000 and heads.schedule.final_steps is None
    # MelHuBERT's task.sequence_length: 750 frames of 20 ms (two 10 ms filter-bank frames stacked)
    assert heads.training.for_family("crop_seconds", "melhubert") == 750 * 0.020
    for config in (heads, rows, weights):
        assert config.training.for_family("batch_size", "melhubert") == 4
        assert config.training.for_family("batch_size", "wav2vec2") == 12
        assert config.optimizer.betas == (0.9, 0.999)
        assert (config.tracking.stimuli, config.tracking.tests, config.tracking.permutations) == (
            "demo", ("gender", "age", "native"), 1_000_000)  # as speat evaluate


def test_every_shipped_config_is_package_data_that_loads():
    names = sorted(path.name for path in CONFIG_DIRECTORY.glob("*.yaml"))
    assert names == ["common.yaml", "heads.yaml", "rows.yaml", "weights.yaml"]
    for name in names:
        assert isinstance(yaml.safe_load((CONFIG_DIRECTORY / name).read_text()), dict)


def test_a_user_file_replaces_only_what_it_names_and_options_win(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("optimizer: {lr: 0.001}\ntraining: {batch_size: 3}\n")
    config = load_config("heads", model="m", out="o", data="d", path=user,
                         overrides={"optimizer.lr": 0.01, "schedule.until": 24, "schedule.every": 7})
    assert config.optimizer.lr == 0.01 and config.training.batch_size == 3 and config.optimizer.eps == 1e-8
    # --min-heads is the last phase's limit and a floor for the others; --steps-per-prune every phase's interval
    assert [(p.every, p.until) for p in config.schedule.phases] == [(7, 72), (7, 24)]
    assert load_config("heads", model="m", out="o", data="d", overrides={"schedule.until": 100}).schedule.phases[0] \
        .until == 100
    # a new interval replaces the authors' final fine-tuning too: the run ends one interval after the last step
    assert load_config("rows", model="m", out="o", data="d", overrides={"schedule.every": 7}).schedule.final_steps \
        is None


def test_bad_settings_name_themselves(tmp_path):
    user = tmp_path / "bad.yaml"
    user.write_text("optimizer: {learning_rate: 0.1}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: optimizer: unknown setting\(s\) learning_rate; known here: lr"):
        load_config("heads", model="m", out="o", data="d", path=user)
    with pytest.raises(ConfigError, match=r"optimizer\.lr \(--lr\) must be a positive number, got -1"):
        load_config("rows", model="m", out="o", data="d", overrides={"optimizer.lr": -1})
    with pytest.raises(ConfigError, match=r"plateau_window \(15000\) must be shorter than schedule.check_every \(100"):
        load_config("weights", model="m", out="o", data="d", overrides={"schedule.every": 100})
    # the first check prunes unconditionally: a warm-up shorter than the window is fine
    assert load_config("weights", model="m", out="o", data="d", overrides={"schedule.warmup_steps": 10})
    with pytest.raises(ConfigError, match="schedule.final_steps applies to the heads and rows methods only"):
        load_config("weights", model="m", out="o", data="d", overrides={"schedule.final_steps": 10})
    with pytest.raises(ConfigError, match=r"schedule\.final_steps must be a positive whole number, got 0"):
        load_config("rows", model="m", out="o", data="d", overrides={"schedule.final_steps": 0})
    with pytest.raises(ConfigError, match="unknown pruning method 'layers'"):
        load_config("layers", model="m", out="o")
    user.write_text("method: rows\n")
    with pytest.raises(ConfigError, match="is a 'rows' recipe, not 'heads'"):
        load_config("heads", model="m", out="o", path=user)


def test_method_specific_options_belong_to_their_method():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["prune", "heads", "m", "--rows-per-step", "8"])
    args = parser.parse_args(["prune", "rows", "m", "--rows-per-step", "8", "--min-rows", "16", "--data", "d"])
    assert (args.rows_per_step, args.min_rows) == (8, 16)


@pytest.mark.parametrize("method", [None, "heads", "rows", "weights"])
def test_every_help_text_renders(method, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["prune", *([method] if method else []), "--help"])
    assert exited.value.code == 0 and "usage: speat prune" in capsys.readouterr().out


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["prune", *argv])


def test_a_resumed_run_keeps_its_settings_and_refuses_contradictions(tmp_path):
    run = tmp_path / "run"
    first = run_config(_args("heads", "m", "--data", "d", "--out", str(run), "--lr", "0.002", "--min-heads", "24"))
    run.mkdir()
    (run / "config.yaml").write_text(first.to_yaml())
    assert read_run_config(run / "config.yaml") == first

    again = run_config(_args("heads", "m", "--out", str(run), "--resume", "--max-steps", "50"))
    assert again.optimizer.lr == 0.002 and again.schedule.phases[-1].until == 24 and again.training.max_steps == 50
    with pytest.raises(ValueError, match=r"these differ: optimizer\.lr: 0\.002 in the run, 0\.1 now"):
        run_config(_args("heads", "m", "--out", str(run), "--resume", "--lr", "0.1"))
    with pytest.raises(ValueError, match=r"model: 'm' in the run, 'other' now"):
        run_config(_args("heads", "other", "--out", str(run), "--resume"))
    with pytest.raises(ValueError, match="has no config.yaml"):
        run_config(_args("heads", "m", "--out", str(tmp_path / "none"), "--resume"))
    with pytest.raises(ValueError, match="--data is required"):
        run_config(_args("heads", "m", "--out", str(tmp_path / "new")))


def test_docstring_examples_run():
    import doctest

    import speat_metric.pruning.config
    import speat_metric.pruning.methods
    import speat_metric.pruning.weights

    for module in (speat_metric.pruning.config, speat_metric.pruning.methods, speat_metric.pruning.weights):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
