"""MelHuBERT's native labels: the authors' cluster-label files (read as their preprocessing writes them and cut as
their dataset cuts them), one-line errors for labels that do not fit, and k-means labels on log-Mel or a layer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from sklearn.metrics import pairwise_distances_argmin
from tiny_models import MELHUBERT, save_melhubert, write_tone_test

from speat_metric.cli import main
from speat_metric.features import kaldi_fbank
from speat_metric.pruning.config import MelHuBERTSettings
from speat_metric.pruning.objectives import (
    KMEANS_FILE,
    LabelError,
    MelHuBERTObjective,
    align_labels,
    crop_position,
    nearest_centroid,
    read_cluster_labels,
)
from speat_metric.results import load_records
from speat_metric.training.data import (
    CropCollator,
    RandomCrops,
    TrainingAudio,
    make_dataloader,
    open_training_audio,
)
from speat_metric.training.models import load_trainable_encoder

KEYS = ["1001-134707-0000", "1001-134707-0001", "1034-121119-0002", "1040-133433-0003"]
CLUSTERS = MELHUBERT.num_cluster  # 16


def kaldi_frames(waveform: np.ndarray) -> int:
    """10 ms filter-bank frames, as Kaldi computed the authors' features (counted by running it, not by formula)."""
    return len(kaldi_fbank(waveform * 32768, num_mel_bins=40, sampling_rate=16_000, window_type="hamming",
                           frame_length=25.0, frame_shift=10.0))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """LibriSpeech-named recordings, and their labels written as the authors' preprocess/tidy_libri360_kaldi_data.py
    writes them: cluster/KEY.npy (one int per 10 ms frame) and a CSV of absolute paths from the authors' machine."""
    root = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(3)
    audio, labels = root / "audio", {}
    for number, key in enumerate(KEYS):
        folder = audio / key.split("-")[0]
        folder.mkdir(parents=True, exist_ok=True)
        waveform = (0.1 * rng.standard_normal(16_000 + 1_777 * number)).astype(np.float32)
        soundfile.write(folder / f"{key}.flac", waveform, 16_000)
        waveform, _ = soundfile.read(folder / f"{key}.flac", dtype="float32")
        labels[key] = rng.integers(0, CLUSTERS, kaldi_frames(waveform))
    # the authors' script, line by line: np.save(label_save_dir/KEY.npy), then 'file_path,label_path,length'
    out_dir = root / "libri-360"
    label_save_dir = os.path.join(out_dir, "cluster")
    os.makedirs(label_save_dir, exist_ok=True)
    with open(out_dir / "libri-360-np-stage1.csv", "w") as out_fp:
        out_fp.write("file_path,label_path,length\n")
        for key, label in labels.items():
            np.save(os.path.join(label_save_dir, key + ".npy"), label)
            out_fp.write(f"/home/nervjack2/libri-with-cluster/feature/{key}.npy,"
                         f"/home/nervjack2/libri-with-cluster/cluster/{key}.npy,{label.shape[0]}\n")
    return {"root": root, "audio": audio, "labels": labels, "csv": out_dir / "libri-360-np-stage1.csv",
            "folder": out_dir / "cluster"}


def training_audio(folder: Path):
    return open_training_audio(folder).check_files(min_seconds=0.3, progress=False)


def authors_crop(label: np.ndarray, feature_frames: int, start_frame: int, frames: int) -> np.ndarray:
    """nervjack2/MelHuBERT dataset.py: `_load_label` (label[::2] when a 20 ms model's feature frames are not as many
    as the labels), then `_sample` (the same frames of features and labels)."""
    if len(label) != feature_frames:
        label = label[::2]
    return label[start_frame:start_frame + frames]


@pytest.mark.parametrize("layout", ["csv", "folder", "km", "20ms"])
def test_the_authors_labels_are_cut_as_their_dataset_cuts_them(corpus, layout, tmp_path):
    audio = training_audio(corpus["audio"])
    if layout == "csv":
        source = corpus["csv"]
    elif layout == "folder":
        source = corpus["folder"]
    elif layout == "20ms":  # labels already at 20 ms (their stage2-cluster-20ms files): one per stacked pair
        source = tmp_path / "cluster-20ms"
        source.mkdir()
        for key, label in corpus["labels"].items():
            np.save(source / f"{key}.npy", label[::2])
    else:  # fairseq's manifest (root, then relative path<TAB>samples) and dump_km_label's lines
        manifest = [str(corpus["audio"])] + [f"{Path(name).relative_to(corpus['audio'])}\t{length}"
                                            for name, length in zip(audio.items, audio.lengths)]
        (tmp_path / "train.tsv").write_text("\n".join(manifest) + "\n")
        (tmp_path / "train.km").write_text("".join(" ".join(map(str, corpus["labels"][Path(name).stem])) + "\n"
                                                   for name in audio.items))
        source = tmp_path / "train.km"
    aligned = align_labels(read_cluster_labels(source), audio, clusters=CLUSTERS)
    assert aligned.description == f"file {source}"
    for index, name in enumerate(audio.items):
        label = corpus["labels"][Path(name).stem]
        for start_frame in (0, 3, 7):  # a crop starting at 20 ms frame `start_frame`, 40 frames long
            expected = authors_crop(label, (len(label) + 1) // 2, start_frame, 40)
            assert np.array_equal(aligned.crop(index, 320 * start_frame, 40, 2), expected)
            if layout != "20ms":  # MelHuBERT-10ms: one label per filter-bank frame
                assert np.array_equal(aligned.crop(index, 160 * start_frame, 40, 1),
                                      authors_crop(label, len(label), start_frame, 40))


def test_crop_positions_are_where_random_crops_cut(corpus):
    audio = training_audio(corpus["audio"])
    crops = RandomCrops(audio, crop_seconds=0.6, min_seconds=0.3, seed=5)
    for epoch in (0, 1):
        for index in range(len(audio)):
            item = crops[(epoch, index)]
            recording, start = crop_position(item, crops)
            whole = audio.read(recording)
            assert recording == index and np.array_equal(whole[start:start + len(item["waveform"])],
                                                         item["waveform"])


def test_labels_that_do_not_fit_fail_in_one_line(corpus, tmp_path):
    audio = training_audio(corpus["audio"])
    labels = read_cluster_labels(corpus["csv"])

    def one_line(error: pytest.ExceptionInfo) -> str:
        assert "\n" not in str(error.value)
        return str(error.value)

    missing = corpus["csv"].with_name("missing.csv")  # beside the original, whose cluster/ it finds
    missing.write_text("".join(corpus["csv"].read_text().splitlines(keepends=True)[:-1]))  # the last key dropped
    with pytest.raises(LabelError, match="has no labels for training recording .*1040-133433-0003.flac") as error:
        align_labels(read_cluster_labels(missing), audio, clusters=CLUSTERS)
    one_line(error)
    short = tmp_path / "short"
    short.mkdir()
    for key, label in corpus["labels"].items():
        np.save(short / f"{key}.npy", label[5:] if key == KEYS[1] else label)
    with pytest.raises(LabelError, match=f"{KEYS[1]}.flac has {len(corpus['labels'][KEYS[1]]) - 5} labels, but"):
        align_labels(read_cluster_labels(short), audio, clusters=CLUSTERS)
    with pytest.raises(LabelError, match="integer cluster ids from 0 to 7"):
        align_labels(labels, audio, clusters=8)
    (tmp_path / "labels.txt").write_text("1 2 3\n")
    with pytest.raises(LabelError, match="give the authors' CSV"):
        read_cluster_labels(tmp_path / "labels.txt")
    (tmp_path / "lonely.km").write_text("1 2 3\n")
    with pytest.raises(LabelError, match="needs its fairseq manifest lonely.tsv"):
        read_cluster_labels(tmp_path / "lonely.km")
    moved = tmp_path / "moved.csv"
    moved.write_text("file_path,label_path,length\n/elsewhere/feature/x.npy,/elsewhere/cluster/x.npy,3\n")
    with pytest.raises(LabelError, match="no labels for training recording"):
        align_labels(read_cluster_labels(moved), audio, clusters=CLUSTERS)
    with pytest.raises(LabelError, match="no such file or folder"):
        read_cluster_labels(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def trainable(tmp_path_factory: pytest.TempPathFactory):
    return load_trainable_encoder(f"melhubert:{save_melhubert(tmp_path_factory.mktemp('model') / 'm.ckpt')}")


def test_log_mel_kmeans_labels_are_the_nearest_centroid(corpus, trainable, tmp_path):
    objective = MelHuBERTObjective(trainable, MelHuBERTSettings(kmeans_frames=150, clusters=6), seed=0)
    assert objective.reference is None and objective.labels_description == "kmeans log-mel k=6"
    audio = training_audio(corpus["audio"])
    crops = RandomCrops(audio, crop_seconds=0.5, min_seconds=0.3, seed=0)
    dataloader = make_dataloader(crops, batch_size=2, prepare=objective.batch_preparer())
    batches = list(dataloader)
    objective.fit_clusters(iter(batches), tmp_path / KMEANS_FILE)
    objective.load_clusters(tmp_path / KMEANS_FILE)
    with np.load(tmp_path / KMEANS_FILE) as stored:
        assert str(stored["features"]) == "log-mel" and stored["centroids"].shape == (6, MELHUBERT.num_mel_bins)
        centroids = stored["centroids"]
    for batch in batches:
        labels = nearest_centroid(objective.cluster_frames(batch), objective.centroids)
        for features, row in zip(batch["features"].numpy(), labels.numpy()):
            # the first 10 ms frame of each stacked 20 ms frame: the authors' stage-1 labels, label[::2]
            assert np.array_equal(row, pairwise_distances_argmin(features[:, :MELHUBERT.num_mel_bins], centroids))
    assert objective.record_fields() == {"labels": "kmeans log-mel k=6"}
    loss = objective.loss(objective.trainable, batches[0])
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_layer_kmeans_labels_the_unpruned_models_layer(corpus, trainable, tmp_path):
    objective = MelHuBERTObjective(trainable, MelHuBERTSettings(kmeans_features="layer", kmeans_frames=150,
                                                                clusters=5), seed=0)
    assert objective.layer == MELHUBERT.encoder_layers // 2 and objective.reference is not None
    crops = RandomCrops(training_audio(corpus["audio"]), crop_seconds=0.5, min_seconds=0.3, seed=0)
    batches = list(make_dataloader(crops, batch_size=2, prepare=objective.batch_preparer()))
    objective.fit_clusters(iter(batches), tmp_path / KMEANS_FILE)
    objective.load_clusters(tmp_path / KMEANS_FILE)
    with torch.no_grad():
        hidden = trainable.encoder(batches[0]["features"], batches[0]["frame_mask"])[1]
    assert torch.equal(objective.cluster_frames(batches[0]), hidden)
    assert objective.labels_description == "kmeans layer 1 k=5"
    log_mel = MelHuBERTObjective(trainable, MelHuBERTSettings(), seed=0)
    with pytest.raises(ValueError, match="holds a k-means of layer features, but .*kmeans_features is log-mel"):
        log_mel.load_clusters(tmp_path / KMEANS_FILE)
    with pytest.raises(ValueError, match="kmeans_layer 7 is not a layer of this model"):
        MelHuBERTObjective(trainable, MelHuBERTSettings(kmeans_features="layer", kmeans_layer=7), seed=0)


def test_the_labels_of_whole_recordings_reach_the_batches(corpus, trainable, tmp_path):
    objective = MelHuBERTObjective(trainable, MelHuBERTSettings(labels=str(corpus["csv"])), seed=0)
    assert objective.record_fields() == {"labels": f"file {corpus['csv']}"} and objective.reference is None
    audio = training_audio(corpus["audio"])
    crops = RandomCrops(audio, crop_seconds=5.0, min_seconds=0.3, seed=0)  # longer than every recording: whole
    dataloader = make_dataloader(crops, batch_size=1, prepare=objective.batch_preparer())
    objective.prepare_run(dataloader, tmp_path, accelerator=None, fit=True)
    for batch, index in zip(dataloader, dataloader.sampler):
        label = corpus["labels"][Path(audio.items[index[1]]).stem]
        frames = batch["features"].shape[1]
        assert np.array_equal(batch["labels"][0].numpy(), authors_crop(label, (len(label) + 1) // 2, 0, frames))
    assert not (tmp_path / KMEANS_FILE).exists()
    # any other collate function of crops (a held-out loss's), and a batch that missed it
    other = RandomCrops(TrainingAudio(audio.description, audio.items[1:3], lengths=audio.lengths[1:3]),
                        crop_seconds=0.5, min_seconds=0.3, seed=9)
    collate = objective.with_labels(CropCollator(objective.batch_preparer(), 9), other)
    items = [other[(0, index)] for index in range(len(other))]
    batch = collate(items)
    for item, row in zip(items, batch["labels"].numpy()):
        recording, start = crop_position(item, other)
        label = corpus["labels"][Path(other.audio.items[recording]).stem]
        # crops start at any sample: each 20 ms frame takes the label of the nearest 10 ms frame of the recording
        assert np.array_equal(row, label[round(start / 160):][::2][:len(row)])
    with pytest.raises(ValueError, match="a batch without its --labels"):
        objective.loss(objective.trainable, CropCollator(objective.batch_preparer(), 9)(items))


def test_prune_with_the_authors_labels(corpus, tmp_path, capsys):
    model = f"melhubert:{save_melhubert(tmp_path / 'm.ckpt')}"
    write_tone_test(tmp_path / "stimuli")
    (tmp_path / "tiny.yaml").write_text("training: {batch_size: 2, crop_seconds: 0.5, min_seconds: 0.3, num_workers: "
                                        "0, save_state_every: null}\nobjective:\n  melhubert: {mask_length: 3}\n")
    common = ["--data", str(corpus["audio"]), "--config", str(tmp_path / "tiny.yaml"), "--steps-per-prune", "2",
              "--warmup-steps", "1", "--min-heads", "6", "--tests", str(tmp_path / "stimuli" / "tone.json"),
              "--permutations", "20", "--no-progress", "--objective", "native"]
    out = tmp_path / "run"
    assert main(["prune", "heads", model, "--out", str(out), *common, "--labels", str(corpus["csv"])]) == 0
    records = load_records(out / "results")
    assert sorted({record.compression["step"] for record in records}) == [0, 3]
    assert {record.compression["config"]["objective"]["melhubert"]["labels"] for record in records} == {
        str(corpus["csv"])}
    assert {record.compression["labels"] for record in records} == {f"file {corpus['csv']}"}
    assert all(record.compression["held_out_loss"] >= 0 for record in records)  # the held-out crops have labels too
    assert not (out / KMEANS_FILE).exists()

    lacking = tmp_path / "lacking"
    lacking.mkdir()
    np.save(lacking / f"{KEYS[0]}.npy", corpus["labels"][KEYS[0]])
    capsys.readouterr()
    assert main(["prune", "heads", model, "--out", str(tmp_path / "e1"), *common, "--labels", str(lacking)]) == 2
    error = capsys.readouterr().err
    assert "has no labels for training recording" in error and f"{KEYS[0]}.flac" not in error  # one without labels
    assert main(["prune", "heads", model, "--out", str(tmp_path / "e2"), *common, "--labels",
                 str(tmp_path / "nowhere.csv")]) == 2
    assert "objective.melhubert.labels (--labels) " in capsys.readouterr().err
    assert main(["prune", "heads", model, "--out", str(tmp_path / "e3"), *common[:-1], "teacher", "--labels",
                 str(corpus["csv"])]) == 2
    assert "cluster labels are for MelHuBERT's native objective" in capsys.readouterr().err
    assert not list(tmp_path.glob("e*/checkpoint-*"))
