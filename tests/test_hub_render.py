"""`speat hub render` of a custom test on a local model, as a new user makes one: the card it prints reproduces the
run when its reproduce line is pasted, names the model as the CLI does, explains every label it shows and warns when
the groups are too small."""

from __future__ import annotations

import json
import os
import re
import shlex

import soundfile
from hub_testing import run_speat
from tiny_models import save_tiny_model, tone_in_noise

from speat_metric.results import MIN_TARGETS, load_records


def write_custom_test(folder):
    """A custom test whose file name (men_women.json) differs from its name (men-women), 3 clips a role."""
    (folder / "audio").mkdir()
    for role_number, role in enumerate("xyab"):
        for index in range(3):
            soundfile.write(folder / "audio" / f"{role}{index}.wav",
                            tone_in_noise(0.25, 200 + 100 * role_number + 15 * index, seed=index), 16_000)
    definition = {"name": "men-women", **{role: [f"audio/{role}{index}.wav" for index in range(3)] for role in "xyab"},
                  "group_names": {"x": "women", "y": "men", "a": "pleasant", "b": "unpleasant"}}
    (folder / "men_women.json").write_text(json.dumps(definition))


def test_a_rendered_card_reproduces_the_run_and_explains_itself(tmp_path):
    write_custom_test(tmp_path)
    save_tiny_model("wav2vec2", tmp_path / "tiny-model")
    evaluated = run_speat("evaluate", "tiny-model", "--tests", "men_women.json", "--permutations", "5000",
                          "--no-progress", "--out", "first", env=os.environ, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    [record] = load_records(tmp_path / "first")
    assert record.speat.exact and record.model_label == "tiny-model"
    assert record.stimuli["definition"]["file"] == "men_women.json" and not record.stimuli["selection_versions"]
    assert re.search(r"^tiny-model\s+men-women ", evaluated.stdout, re.MULTILINE)  # the CLI's name for the model

    rendered = run_speat("hub", "render", "first", env=os.environ, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    card = rendered.stdout
    command = card.split("```bash\n", 1)[1].split("\n", 1)[0]
    assert command == "speat evaluate ./tiny-model --tests men_women.json --seed 0"  # no partition count
    assert "results of `tiny-model`" in card and "- name: tiny-model" in card
    assert "selections" not in card.split("# README.md section")[0]  # no study selections for its own audio
    assert f"- `small-groups`: fewer than {MIN_TARGETS} target speakers" in card
    assert "small-groups" in record.labels and all(f"`{label}`:" in card for label in record.labels)
    assert "men_women.json" in card and "Speech Accent Archive" not in card.split("**Stimuli:**")[1].split("\n")[0]

    pasted = run_speat(*shlex.split(command)[1:], "--no-progress", "--out", "again", env=os.environ,
                       cwd=tmp_path)
    assert pasted.returncode == 0, pasted.stderr[-2000:]
    [again] = load_records(tmp_path / "again")
    assert (again.speat.effect_size, again.speat.p_value) == (record.speat.effect_size, record.speat.p_value)
    assert again.stimulus_fingerprint == record.stimulus_fingerprint


def test_render_chooses_a_layer_view_and_a_profile(tmp_path):
    write_custom_test(tmp_path)
    save_tiny_model("wav2vec2", tmp_path / "tiny-model")
    env = os.environ
    for options in (("--pooling", "per-layer"), ()):
        assert run_speat("evaluate", "tiny-model", "--tests", "men_women.json", "--permutations", "500",
                         "--no-progress", "--out", "results", *options, env=env, cwd=tmp_path).returncode == 0
    both = run_speat("hub", "render", "results", env=env, cwd=tmp_path)  # the table's mean, and the layer figure
    assert both.returncode == 0, both.stderr
    assert "| men-women | women vs men | mean of all layers |" in both.stdout
    assert "![SpEAT d per layer" in both.stdout and "- On men-women, |d| is smallest at layer" in both.stdout
    assert "--pooling per-layer" in both.stdout.split("```bash\n")[1]
    assert run_speat("evaluate", "tiny-model", "--tests", "men_women.json", "--permutations", "500", "--no-progress",
                     "--out", "results", "--profile", "s3prl", env=env, cwd=tmp_path).returncode == 0
    several = run_speat("hub", "render", "results", env=env, cwd=tmp_path)
    assert several.returncode == 2 and "speat hub render --layer mean|N --profile P" in several.stderr
    for view, shown in (("mean", "mean of all layers"), ("2", "layer 2")):
        chosen = run_speat("hub", "render", "results", "--layer", view, "--profile", "hf", env=env, cwd=tmp_path)
        assert chosen.returncode == 0, chosen.stderr
        assert f"| men-women | women vs men | {shown} |" in chosen.stdout
    none = run_speat("hub", "render", "results", "--profile", "speat2023", env=env, cwd=tmp_path)
    assert none.returncode == 2 and "no records of profile speat2023" in none.stderr
