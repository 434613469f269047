"""speat_metric.model_spec: every form of model string, parsed in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from speat_metric.adapters import checkpoint_series
from speat_metric.errors import ModelLoadError
from speat_metric.model_spec import FEATURES, RANDOM_MODELS, ModelSpec


@pytest.mark.parametrize(("text", "kind", "target", "seed"), [
    ("mfcc", "feature", "mfcc", 0),
    ("random:melhubert-base", "random", "base", 0),
    ("random:melhubert-slim@12", "random", "slim", 12),
    ("melhubert:runs/a b/x.ckpt", "melhubert", "runs/a b/x.ckpt", 0),
    ("m2d:/models/m2d_vit.pth", "m2d", "/models/m2d_vit.pth", 0),
    ("facebook/hubert-base-ls960", "transformers", "facebook/hubert-base-ls960", 0),
    ("./runs/checkpoint-5", "transformers", "./runs/checkpoint-5", 0),
    ("other:thing", "transformers", "other:thing", 0),  # only melhubert: and m2d: are prefixes
])
def test_each_form_parses_to_its_kind(text, kind, target, seed):
    spec = ModelSpec.parse(text)
    assert (spec.text, spec.kind, spec.target, spec.seed) == (text, kind, target, seed)
    assert ModelSpec.parse(spec) is spec and str(spec) == text


def test_every_built_in_name_parses_and_an_unknown_random_model_is_refused():
    assert {ModelSpec.parse(name).kind for name in FEATURES} == {"feature"}
    assert {ModelSpec.parse(name).kind for name in RANDOM_MODELS} == {"random"}
    with pytest.raises(ModelLoadError, match="unknown random model 'random:melhubert-huge'"):
        ModelSpec.parse("random:melhubert-huge")


def test_labels_and_descriptions_come_from_the_kind():
    assert ModelSpec.parse("stft").labels == ("classical-feature",)
    assert ModelSpec.parse("random:melhubert-small@1").labels == ("random-init",)
    assert ModelSpec.parse("org/model").labels == () and ModelSpec.parse("org/model").description == "model"


def test_a_checkpoint_directory_names_its_members_in_its_own_kind(tmp_path: Path):
    for step in (20, 5):
        (tmp_path / f"checkpoint-{step}.ckpt").write_bytes(b"x")
    series = checkpoint_series(f"melhubert:{tmp_path}")
    assert [member for member, _ in series] == [f"melhubert:{tmp_path / name}" for name in
                                               ("checkpoint-5.ckpt", "checkpoint-20.ckpt")]
    assert [ModelSpec.parse(member).kind for member, _ in series] == ["melhubert", "melhubert"]
    assert checkpoint_series(str(tmp_path)) == series  # a plain folder of .ckpt files is MelHuBERT's
