"""The accelerate loop helpers: mixed precision where the hardware has it, trackers, progress, seeded numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate.tracking import GeneralTracker

from speat_metric.training.checkpoints import TrainerState
from speat_metric.training.loop import (
    StepProgress,
    TrainingSteps,
    make_accelerator,
    numpy_seed,
    parse_report_to,
    resolve_mixed_precision,
)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_mixed_precision_is_used_only_where_the_hardware_has_it():
    assert resolve_mixed_precision("auto") == "no"
    assert resolve_mixed_precision("no") == "no"
    with pytest.raises(ValueError, match="--mixed-precision fp16 needs a CUDA GPU; this machine has none"):
        resolve_mixed_precision("fp16")
    with pytest.raises(ValueError, match="mixed precision must be one of auto, no, fp16, bf16, got 'fp8'"):
        resolve_mixed_precision("fp8")


def test_report_to_names_trackers_and_says_what_to_install():
    assert parse_report_to(None) is None and parse_report_to(" none ") is None and parse_report_to("all") == "all"
    with pytest.raises(ValueError, match="--report-to 'tensorbored' is not a tracker accelerate knows"):
        parse_report_to("tensorbored")
    with pytest.raises(ValueError, match=r"the wandb package is not installed \(pip install wandb\)"):
        parse_report_to("wandb")


class _Recorder(GeneralTracker):
    name = "recorder"
    requires_logging_directory = False

    def __init__(self):
        super().__init__()
        self.logged = []

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        self.logged.append(("config", dict(values)))

    def log(self, values, step=None, **kwargs):
        self.logged.append((step, dict(values)))


def test_the_accelerator_accumulates_gradients_and_feeds_trackers(tmp_path):
    recorder = _Recorder()
    accelerator = make_accelerator(project_dir=tmp_path, gradient_accumulation_steps=3, report_to=[recorder])
    accelerator.init_trackers("speat-test", config={"lr": 0.1})
    accelerator.log({"train/loss": 1.5}, step=4)
    assert accelerator.gradient_accumulation_steps == 3 and accelerator.mixed_precision == "no"
    assert recorder.logged == [("config", {"lr": 0.1}), (4, {"train/loss": 1.5})]
    with pytest.raises(ValueError, match="gradient accumulation steps must be at least 1"):
        make_accelerator(project_dir=tmp_path, gradient_accumulation_steps=0)


def test_a_training_step_accumulates_micro_batches_then_clips_updates_counts_and_logs(tmp_path):
    recorder = _Recorder()
    accelerator = make_accelerator(project_dir=tmp_path, gradient_accumulation_steps=2, report_to=[recorder])
    accelerator.init_trackers("speat-test")
    linear = torch.nn.Linear(3, 1, bias=False)
    torch.nn.init.ones_(linear.weight)
    model, optimizer = accelerator.prepare(linear, torch.optim.SGD(linear.parameters(), lr=1.0))
    inputs = [torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 3.0, 0.0]])]
    updates, state = [], TrainerState()
    step = TrainingSteps(accelerator, StepProgress(1, desc="test", enabled=False), gradient_clipping=0.5,
                         log_prefix="student-1/")
    found = [step(model, optimizer, state, lambda: (model(x).sum() * 2, {"scaled": torch.tensor(2.0)}),
                  lambda: updates.append(float(model.weight.grad.norm())) or {"lr": 1.0}) for x in inputs]
    # the mean of 2 and 6 over the two micro-batches; gradients (2, 0, 0) / 2 + (0, 6, 0) / 2 clipped to norm 0.5
    assert found == [None, 4.0] and (state.step, state.batches_in_epoch) == (1, 2)
    assert updates == [pytest.approx(10**0.5)] and (model.weight.grad is None or not model.weight.grad.any())
    assert torch.allclose(model.weight.detach(), torch.tensor([[1 - 0.5 / 10**0.5, 1 - 1.5 / 10**0.5, 1.0]]))
    assert recorder.logged[-1] == (1, {"student-1/train/loss": 4.0, "student-1/train/lr": 1.0,
                                       "student-1/train/scaled": 2.0})


def test_the_progress_bar_can_grow_and_is_silent_when_disabled(capsys):
    bar = StepProgress(4, initial=1, desc="pruning", enabled=True)
    bar.update(postfix={"loss": "0.5"})
    bar.set_total(10)
    bar.write("pruned 2 heads")
    bar.close()
    shown = capsys.readouterr().err
    assert "pruned 2 heads" in shown and "2/10" in shown and "loss=0.5" in shown
    quiet = StepProgress(4, desc="pruning", enabled=False)
    quiet.update()
    quiet.write("pruned")
    quiet.close()
    assert capsys.readouterr().err == ""


def test_numpy_seed_is_reproducible_and_restores_the_global_generator():
    np.random.seed(5)
    expected_next = np.random.rand()
    np.random.seed(5)
    with numpy_seed(11):
        inside = np.random.rand(3)
    with numpy_seed(11):
        again = np.random.rand(3)
    assert np.array_equal(inside, again) and np.random.rand() == expected_next


def test_docstring_examples_run():
    import doctest

    import speat_metric.training.checkpoints
    import speat_metric.training.data
    import speat_metric.training.loop
    import speat_metric.training.slicing

    for module in (speat_metric.training.loop, speat_metric.training.checkpoints, speat_metric.training.data,
                   speat_metric.training.slicing):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__
