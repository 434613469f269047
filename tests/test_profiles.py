"""Extraction profiles: the layers each profile takes, against the models' submodules called one by one; profiles in
cache keys, records, labels, tables and the command line."""

import doctest
import json
import logging

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
import transformers
from tiny_models import randomise_layer_norms, save_tiny_model

from speat_metric import profiles
from speat_metric.adapters import load_encoder
from speat_metric.adapters.classical import ClassicalFeatureEncoder
from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTEncoder
from speat_metric.adapters.transformers_encoder import TransformersEncoder
from speat_metric.cli import main
from speat_metric.embedding import clips_of, embed_stimuli
from speat_metric.evaluation import EvaluationSettings, evaluate_models
from speat_metric.pipeline import evaluate_tests
from speat_metric.report import format_records
from speat_metric.results import EvaluationRecord
from speat_metric.stimuli import SpeatTestSpec, load_speat_test

TOLERANCE = 1e-5
"""Absolute tolerance (features are O(1)) between the adapter and the independent computation: the same float32
operations, possibly summed in another order by another number of threads."""

_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16, 16),
              conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)

# name -> (model class, config class, overrides): base-size layouts (group-norm CNN, post-LN) and large-size ones
# (layer-norm CNN, stable layer norm: wav2vec2-large-lv60, HuBERT-large/xl, WavLM-large)
MODELS = {
    "wav2vec2-base": (transformers.Wav2Vec2Model, transformers.Wav2Vec2Config,
                      dict(feat_extract_norm="group", do_stable_layer_norm=False)),
    "hubert-base": (transformers.HubertModel, transformers.HubertConfig,
                    dict(feat_extract_norm="group", do_stable_layer_norm=False)),
    "wavlm-base": (transformers.WavLMModel, transformers.WavLMConfig,
                   dict(feat_extract_norm="group", do_stable_layer_norm=False)),
    "wav2vec2-large-lv60": (transformers.Wav2Vec2Model, transformers.Wav2Vec2Config,
                            dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
    "hubert-large": (transformers.HubertModel, transformers.HubertConfig,
                     dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
    "wavlm-large": (transformers.WavLMModel, transformers.WavLMConfig,
                    dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
}

CLIP = (0.3 * np.sin(2 * np.pi * 180 * np.arange(9_000) / 16_000)
        + np.random.default_rng(5).normal(0, 0.05, 9_000) + 0.02).astype(np.float32)  # an offset, so normalising shows


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile-models")
    dirs = {}
    for index, (name, (model_class, config_class, overrides)) in enumerate(MODELS.items()):
        torch.manual_seed(index)
        model = randomise_layer_norms(model_class(config_class(**_SMALL, **overrides)))
        model.save_pretrained(root / name)
        layer_norm = overrides["feat_extract_norm"] == "layer"
        transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=layer_norm).save_pretrained(
            root / name)
        dirs[name] = root / name
    return dirs


def submodule_taps(model, waveform):
    """The model's submodules called one by one on one unpadded clip, as the architectures are defined (fairseq's
    and transformers' alike): CNN, feature projection, + positional convolution, (LayerNorm if post-LN), layers,
    (final LayerNorm if stable)."""
    config = model.config
    with torch.inference_mode():
        features = model.feature_extractor(torch.as_tensor(waveform)[None]).transpose(1, 2)
        projection = model.feature_projection(features)
        projection = projection[0] if isinstance(projection, tuple) else projection
        hidden = projection + model.encoder.pos_conv_embed(projection)
        if not config.do_stable_layer_norm:
            hidden = model.encoder.layer_norm(hidden)
        inputs, outputs, position_bias = [], [], None
        for layer in model.encoder.layers:
            inputs.append(hidden)
            if config.model_type == "wavlm":
                hidden, position_bias = layer(hidden, position_bias=position_bias)
            else:
                hidden = layer(hidden)
                hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            outputs.append(hidden)
        final = model.encoder.layer_norm(hidden) if config.do_stable_layer_norm else hidden
    return projection, inputs, outputs, final


def expected_input(profile, config, waveform):
    """The waveform each profile feeds the model (written out here, not taken from speat)."""
    if profile == "hf":  # Wav2Vec2FeatureExtractor(do_normalize=True): zero mean, unit variance, eps 1e-7
        return (waveform - waveform.mean()) / np.sqrt(waveform.var() + 1e-7)
    fairseq_normalize = config.feat_extract_norm == "layer"  # task.normalize of the released checkpoints
    if profile == "speat2023" and config.model_type == "wavlm":
        fairseq_normalize = False  # the reference's wavlm.py never normalises
    if fairseq_normalize:
        return F.layer_norm(torch.as_tensor(waveform), waveform.shape).numpy()
    return waveform


def expected_layers(profile, model_type, projection, inputs, outputs, final):
    if profile == "hf":
        return [inputs[0], *outputs]
    if profile == "s3prl":
        return [*inputs, final]
    if model_type == "wav2vec2":  # speat2023: the feature projection before the positional convolution
        return [projection, *outputs]
    if model_type == "hubert":  # speat2023: fairseq output_layer=0 runs every layer
        return [outputs[-1], *outputs]
    return [inputs[0], *outputs]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("profile", ["hf", "speat2023", "s3prl"])
def test_each_profile_takes_the_tensors_of_its_reference(model_dirs, name, profile):
    encoder = TransformersEncoder(model_dirs[name], profile=profile)
    config = encoder.model.config
    taps = submodule_taps(encoder.model, expected_input(profile, config, CLIP).astype(np.float32))
    expected = expected_layers(profile, config.model_type, *taps)
    output = encoder.encode([CLIP])
    assert int(output.frame_mask.sum()) == expected[0].shape[1]
    assert len(output.hidden_states) == len(expected) == config.num_hidden_layers + 1
    for index, (ours, theirs) in enumerate(zip(output.hidden_states, expected)):
        np.testing.assert_allclose(ours[0], theirs[0], atol=TOLERANCE, err_msg=f"{name} {profile} layer {index}")


def test_stable_layer_norm_last_layer_is_taken_before_or_after_the_final_norm_as_each_profile_says(model_dirs):
    """The tensor transformers 4 and 5 disagree on, taken explicitly: hf and speat2023 before the final LayerNorm,
    s3prl after it (and these differ, because the randomised LayerNorm is not the identity)."""
    model = TransformersEncoder(model_dirs["wav2vec2-large-lv60"]).model
    _, _, outputs, final = submodule_taps(model, F.layer_norm(torch.as_tensor(CLIP), CLIP.shape).numpy())
    assert float((outputs[-1] - final).abs().max()) > 0.1
    last = {profile: TransformersEncoder(model_dirs["wav2vec2-large-lv60"], profile=profile).encode([CLIP])
            .hidden_states[-1][0] for profile in ("hf", "speat2023", "s3prl")}
    np.testing.assert_allclose(last["speat2023"], outputs[-1][0], atol=TOLERANCE)
    np.testing.assert_allclose(last["s3prl"], final[0], atol=TOLERANCE)


@pytest.mark.skipif(int(transformers.__version__.split(".")[0]) != 5, reason="hf is defined as transformers 5's")
def test_hf_is_what_transformers_5_returns_as_hidden_states(model_dirs):
    encoder = TransformersEncoder(model_dirs["hubert-large"])
    inputs = encoder.extractor([CLIP], sampling_rate=16_000, return_tensors="pt")
    with torch.inference_mode():
        hidden_states = encoder.model(**inputs, output_hidden_states=True).hidden_states
    for ours, theirs in zip(encoder.encode([CLIP]).hidden_states, hidden_states):
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)


def test_speat2023_encodes_long_clips_in_reference_chunks(model_dirs):
    """A clip longer than max_chunk is normalised whole, then encoded piece by piece and the frames concatenated."""
    encoder = TransformersEncoder(model_dirs["wav2vec2-large-lv60"], profile="speat2023")
    encoder._chunk_samples = 4_000  # the reference's 1,600,000 samples, scaled down to a test clip
    normalised = F.layer_norm(torch.as_tensor(CLIP), CLIP.shape).numpy()
    pieces = [submodule_taps(encoder.model, normalised[start:start + 4_000]) for start in (0, 4_000, 8_000)]
    output = encoder.encode([CLIP])
    expected_last = torch.cat([piece[2][-1][0] for piece in pieces])
    assert int(output.frame_mask.sum()) == len(expected_last)
    np.testing.assert_allclose(output.hidden_states[-1][0], expected_last, atol=TOLERANCE)


def test_whisper_speat2023_pads_the_mel_and_stops_before_ln_post(tmp_path):
    directory = save_tiny_model("whisper", tmp_path / "whisper")
    hf = TransformersEncoder(directory)
    reference = TransformersEncoder(directory, profile="speat2023")
    model, extractor = reference.model, reference.extractor
    mel = torch.as_tensor(extractor(CLIP, sampling_rate=16_000, padding="longest",  # the clip's own log-mel
                                    return_tensors="np")["input_features"][0])
    assert mel.shape[-1] == len(CLIP) // 160
    padded = F.pad(mel, (0, 3000 - mel.shape[-1]))[None]  # openai-whisper's pad_or_trim(mel, N_FRAMES)
    with torch.inference_mode():
        hidden = F.gelu(model.conv2(F.gelu(model.conv1(padded)))).permute(0, 2, 1) + model.embed_positions.weight
        layers = [hidden]
        for layer in model.layers:
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            layers.append(hidden)
    output = reference.encode([CLIP])
    valid = int(output.frame_mask.sum())
    assert valid == mel.shape[-1] // 2 + mel.shape[-1] % 2
    for ours, theirs in zip(output.hidden_states, layers):
        np.testing.assert_allclose(ours[0, :valid], theirs[0, :valid], atol=TOLERANCE)
    long = np.tile(CLIP, 60)  # 33.75 s: the whole clip's mel (not truncated to 30 s), cut into two windows
    assert int(reference.encode([long]).frame_mask.sum()) == 1500 + (len(long) // 160 - 3000 + 1) // 2
    # hf: the mel of the zero-padded waveform, and the last layer after ln_post (transformers' tie to the output)
    hf_last = hf.encode([CLIP]).hidden_states[-1][0]
    features = extractor([CLIP], sampling_rate=16_000, return_tensors="pt")["input_features"]
    with torch.inference_mode():
        tied = model(features).last_hidden_state[0]
    np.testing.assert_allclose(hf_last, tied[: len(hf_last)], atol=TOLERANCE)


def test_a_profile_without_layers_for_a_model_type_is_refused_before_any_work(tmp_path):
    directory = save_tiny_model("data2vec-audio", tmp_path / "d2v")
    with pytest.raises(ValueError, match=r"--profile speat2023 defines layers for wav2vec2, hubert, wavlm, whisper "
                                         r"only; '.*d2v' is a 'data2vec-audio' model: use --profile hf or s3prl"):
        evaluate_models([str(directory)], EvaluationSettings(tests=("gender",), profile="speat2023", progress=False))
    with pytest.raises(ValueError, match=r"--profile must be one of hf, speat2023, s3prl, got 'fairseq'"):
        EvaluationSettings(profile="fairseq")
    with pytest.raises(ValueError, match=r"--profile must be one of hf, speat2023, s3prl, got 'x'"):
        load_encoder("mfcc", profile="x")


# --------------------------------------------------------------------------------------------------------------
# Cache keys, records, labels, tables


class CountingFeature(ClassicalFeatureEncoder):
    clips = 0

    def encode(self, waveforms):
        CountingFeature.clips += len(waveforms)
        return super().encode(waveforms)


def test_the_profile_changes_the_cache_key(tmp_path):
    """44.1 kHz files: hf resamples with soxr, speat2023 with ratecv. No profile is served another's embeddings."""
    rng = np.random.default_rng(0)
    time = np.arange(11_025) / 44_100
    paths = []
    for index in range(8):
        paths.append(tmp_path / f"clip{index}.wav")
        soundfile.write(paths[-1], 0.3 * np.sin(2 * np.pi * 9_000 * time * (1 + index / 19))
                        + rng.normal(0, 0.01, len(time)), 44_100, subtype="PCM_16")
    spec = SpeatTestSpec.from_files("tones", x=paths[0:2], y=paths[2:4], a=paths[4:6], b=paths[6:8])
    clips = clips_of(list(load_speat_test(spec, progress=False)))
    embeddings, CountingFeature.clips = {}, 0
    for profile in ("hf", "speat2023", "hf", "speat2023", "s3prl"):
        encoder = CountingFeature("spectrogram")
        encoder.profile = profile
        embeddings.setdefault(profile, []).append(embed_stimuli(encoder, clips, cache_dir=tmp_path / "cache",
                                                                progress=False))
    assert CountingFeature.clips == 3 * 8  # hf, speat2023 and s3prl computed once each; the repeats from the cache
    assert len(list((tmp_path / "cache").iterdir())) == 3
    for runs in embeddings.values():
        assert all(np.array_equal(runs[0][key], runs[-1][key]) for key in runs[0])
    hf, reference = embeddings["hf"][0], embeddings["speat2023"][0]
    assert all(not np.allclose(hf[key], reference[key], atol=1e-3) for key in hf)  # aliasing at 9-10 kHz shows


@pytest.fixture(scope="module")
def demo_gender():
    return {"gender": load_speat_test("gender", source="demo", progress=False)}


def test_records_carry_the_profile_and_the_comparability_labels(demo_gender):
    melhubert = MelHuBERTEncoder.from_config(MelHuBERTConfig(encoder_layers=1, encoder_embed_dim=16,
                                                             encoder_ffn_embed_dim=32, encoder_attention_heads=2,
                                                             conv_pos=4, conv_pos_groups=2), name="tiny-mel")
    melhubert.profile = "s3prl"
    plain, cmvn = ClassicalFeatureEncoder("mfcc"), ClassicalFeatureEncoder("mfcc", cmvn=True)
    records = {name: evaluate_tests(encoder, demo_gender, num_permutations=200, progress=False)[0]
               for name, encoder in (("melhubert", melhubert), ("mfcc", plain), ("mfcc-cmvn", cmvn))}
    assert records["melhubert"].profile == "s3prl" and records["mfcc"].profile == "hf"
    assert records["melhubert"].labels == ("synthetic-stimuli", profiles.UNNORMALISED_INPUT)
    assert records["mfcc"].labels == ("synthetic-stimuli", profiles.NOT_TABLE3_COMPARABLE)
    assert records["mfcc-cmvn"].labels == ("synthetic-stimuli", profiles.CMVN_RESIDUE)
    again = EvaluationRecord.from_json(records["melhubert"].to_json())
    assert again.profile == "s3prl" and again.labels == records["melhubert"].labels
    assert "__s3prl" in records["melhubert"].file_name and "__s3prl" not in records["mfcc"].file_name
    table = format_records(list(records.values()))
    header = table.splitlines()[2].split()
    assert header[:6] == ["model", "test", "X", "vs", "Y", "layer"] and header[6] == "profile"
    assert "unnormalised-input: MelHuBERT without --mean-std" in table
    assert "not-table3-comparable: classical feature without CMVN" in table
    assert "cmvn-rounding-residue: classical feature with per-clip CMVN" in table
    assert "whisper-not-comparable" not in table  # footnotes only for the labels shown
    assert "s3prl = S3PRL upstream hooks" in table and "hf = transformers 5 hidden_states" in table


def test_a_hubert_under_speat2023_is_labelled_and_explained(model_dirs, demo_gender):
    encoder = TransformersEncoder(model_dirs["hubert-base"], profile="speat2023")
    record = evaluate_tests(encoder, demo_gender, num_permutations=100, progress=False)[0]
    assert record.labels == ("synthetic-stimuli", profiles.SPEAT2023_HUBERT_LAYERS)
    assert "layer 0 is the LAST transformer layer" in format_records([record], "markdown")


def test_melhubert_without_statistics_warns_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="speat_metric"):
        load_encoder("random:melhubert-small")
    assert "NOT normalised" in caplog.text and "unnormalised-input" in caplog.text


def test_the_command_line_takes_profile_and_cmvn(tmp_path, capsys):
    code = main(["evaluate", "mfcc", "--tests", "gender", "--profile", "speat2023", "--cmvn", "--permutations",
                 "200", "--no-progress", "--format", "json", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    (record,) = [EvaluationRecord.from_dict(entry) for entry in json.loads(capsys.readouterr().out)]
    assert record.profile == "speat2023" and profiles.CMVN_RESIDUE in record.labels
    assert record.model.settings["cmvn"] is True
    (written,) = (tmp_path / "out").iterdir()
    assert written.name.startswith("mfcc__gender__mean-mean__speat2023")
    with pytest.raises(SystemExit):  # argparse's choices
        main(["evaluate", "mfcc", "--profile", "fairseq"])
    assert "invalid choice: 'fairseq'" in capsys.readouterr().err


def test_docstring_examples_run():
    assert doctest.testmod(profiles).failed == 0
