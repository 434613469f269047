"""Checkpoints: which state a run resumes from, and a resumed loop that continues exactly where it stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import write_audio_folder
from torch import nn

from speat_metric.training.checkpoints import (
    TRAINER_STATE,
    TrainerState,
    load_training_state,
    read_trainer_state,
    resolve_resume,
    resume_batches,
    save_training_state,
    state_directories,
)
from speat_metric.training.data import RandomCrops, make_dataloader, open_training_audio
from speat_metric.training.loop import make_accelerator


def _state(run, step, complete=True):
    directory = run / "state" / f"step-{step:09d}"
    directory.mkdir(parents=True)
    if complete:
        (directory / TRAINER_STATE).write_text(json.dumps(TrainerState(step=step).to_dict()))
    return directory


def test_resolve_resume_picks_the_latest_complete_state_and_never_overwrites_a_run(tmp_path):
    run = tmp_path / "run"
    assert resolve_resume(run, resume=False) is None
    with pytest.raises(ValueError, match="has no saved training state to resume from; run without --resume"):
        resolve_resume(run, resume=True)
    _state(run, 5)
    _state(run, 40)
    _state(run, 100, complete=False)  # cut short by a kill
    assert resolve_resume(run, resume=True).name == "step-000000040"
    assert resolve_resume(run, resume="latest") == resolve_resume(run, resume=True)
    assert resolve_resume(run, resume=str(run / "state" / "step-000000005")).name == "step-000000005"
    with pytest.raises(ValueError, match=r"not a complete saved state \(no trainer_state.json\)"):
        resolve_resume(run, resume=str(run / "state" / "step-000000100"))
    with pytest.raises(ValueError, match=r"already holds a run \(saved states up to step-000000040\); pass --resume"):
        resolve_resume(run, resume=False)
    assert [path.name for path in state_directories(run)] == ["step-000000005", "step-000000040"]


def test_trainer_state_round_trips_and_a_damaged_one_is_named(tmp_path):
    state = TrainerState(step=7, epoch=2, batches_in_epoch=3, recipe={"method": {"prunes_done": 1}})
    directory = _state(tmp_path, 7, complete=False)
    (directory / TRAINER_STATE).write_text(json.dumps(state.to_dict()))
    assert read_trainer_state(directory) == state
    (directory / TRAINER_STATE).write_text("{")
    with pytest.raises(ValueError, match="trainer_state.json is not a readable trainer state"):
        read_trainer_state(directory)


def _prepare(waveforms, generator):
    return {"x": torch.from_numpy(np.stack([waveform[:400] for waveform in waveforms]))}


def _train(accelerator, model, optimizer, dataloader, state, until, run, *, save_at=None, keep=2):
    """The loop of a recipe, stripped down: returns the keys of the batches it saw after `state`."""
    seen = []
    while state.step < until:
        for batch in resume_batches(dataloader, state):
            seen.append(float(batch["x"][0, 0]))
            with accelerator.accumulate(model):
                loss = model(batch["x"]).pow(2).mean()
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            if state.step == save_at:
                save_training_state(accelerator, run, state, keep=keep)
            if state.step >= until:
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
    return seen


def _setup(run, folder, seed):
    accelerator = make_accelerator(project_dir=run, gradient_accumulation_steps=2, mixed_precision="no")
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Dropout(0.3), nn.Linear(400, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    crops = RandomCrops(open_training_audio(folder), crop_seconds=0.5, min_seconds=0.2, seed=0)
    return accelerator, *accelerator.prepare(model, optimizer, make_dataloader(crops, batch_size=1, prepare=_prepare))


def test_a_resumed_loop_continues_at_the_same_batch_with_the_same_weights_and_generators(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    write_audio_folder(folder, count=5)  # 5 batches per epoch, 2 per step: epochs end mid-step
    accelerator, model, optimizer, loader = _setup(tmp_path / "a", folder, seed=0)
    torch.manual_seed(1)
    uninterrupted = _train(accelerator, model, optimizer, loader, TrainerState(), 9, tmp_path / "a", save_at=4)
    expected = [parameter.detach().clone() for parameter in model.parameters()]

    accelerator, model, optimizer, loader = _setup(tmp_path / "a", folder, seed=99)  # other weights until loaded
    state = load_training_state(accelerator, resolve_resume(tmp_path / "a", resume=True))
    assert (state.step, state.epoch) == (4, 1)
    resumed = _train(accelerator, model, optimizer, loader, state, 9, tmp_path / "a")

    assert resumed == uninterrupted[-len(resumed):]
    for parameter, value in zip(model.parameters(), expected):
        torch.testing.assert_close(parameter.detach(), value, rtol=0, atol=1e-7)


def test_old_and_partial_states_are_removed_keeping_the_latest(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    write_audio_folder(folder, count=3)
    accelerator, model, optimizer, loader = _setup(tmp_path / "run", folder, seed=0)
    _state(tmp_path / "run", 1, complete=False)
    for step in (2, 3, 4):
        save_training_state(accelerator, tmp_path / "run", TrainerState(step=step), keep=2)
    assert sorted(path.name for path in (tmp_path / "run" / "state").iterdir()) == ["step-000000003",
                                                                                    "step-000000004"]
