"""speat_metric.space.uploads: CSV and NPZ embeddings -> the evaluate module's SpEAT, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speat_metric.space.uploads import EmbeddingsFileError, evaluate_upload, read_embeddings, upload_scores
from speat_metric.statistics import speat_test


def _sets(seed: int = 3) -> dict[str, np.ndarray]:
    """Asymmetric sets (sizes and offsets differ), so an axis or ordering mistake changes d."""
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(0.4, 1, (7, 5)), "Y": rng.normal(-0.3, 1, (6, 5)), "A": rng.normal(1, 1, (5, 5)),
            "B": rng.normal(-1, 1, (4, 5))}


def write_csv(path, sets) -> None:
    rows = [{"id": f"{role}-{index}", "group": role, **{f"d{k}": value for k, value in enumerate(vector)}}
            for role, array in sets.items() for index, vector in enumerate(array)]
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(path, index=False)  # roles interleaved


def test_csv_and_npz_give_the_d_of_speat_test_on_the_same_data(tmp_path):
    sets = _sets()
    expected = speat_test(sets["X"], sets["Y"], sets["A"], sets["B"], num_permutations=5_000, seed=7)
    write_csv(tmp_path / "e.csv", sets)
    np.savez(tmp_path / "e.npz", **sets)
    flat = np.concatenate(list(sets.values()))
    np.savez(tmp_path / "flat.npz", embeddings=flat, groups=np.array([r for r, a in sets.items() for _ in a]))
    for name in ("e.csv", "e.npz", "flat.npz"):
        result = evaluate_upload(read_embeddings(tmp_path / name), num_permutations=5_000, seed=7)
        assert result["effect_size"] == pytest.approx(expected.effect_size, rel=1e-12), name
        assert result["p_value"] == pytest.approx(expected.p_value, rel=1e-12), name
        assert (result["n_x"], result["n_y"], result["n_a"], result["n_b"]) == (7, 6, 5, 4)


def test_upload_scores_name_each_target_and_reproduce_d(tmp_path):
    sets = _sets()
    write_csv(tmp_path / "e.csv", sets)
    upload = read_embeddings(tmp_path / "e.csv")
    result = evaluate_upload(upload, num_permutations=100, seed=0)
    frame = upload_scores(upload, result)
    assert sorted(frame["stimulus"]) == sorted([f"X-{i}" for i in range(7)] + [f"Y-{i}" for i in range(6)])
    x, y = frame[frame["role"] == "X"]["s(w)"], frame[frame["role"] == "Y"]["s(w)"]
    assert (x.mean() - y.mean()) / pd.concat([x, y]).std(ddof=1) == pytest.approx(result["effect_size"], rel=1e-9)


@pytest.mark.parametrize(("content", "message"), [
    ("id,d0,d1\na,1,2\n", "has no 'group' column"),
    ("group,d0\nX,1\nX,2\nY,1\nY,3\nA,1\nA,2\nB,1\nQ,2\n", r"group must be X, Y, A or B; found 9: 'Q'"),
    ("group,d0,d1\nX,1,a\nX,2,b\nY,1,c\nY,1,d\nA,1,e\nA,1,f\nB,1,g\nB,1,h\n", "not numeric: d1"),
    ("group,d0\nX,1\nX,\nY,1\nY,3\nA,1\nA,2\nB,1\nB,2\n", r"empty values in line\(s\) 3"),
    ("group,d0\nX,1\nY,1\nY,3\nA,1\nA,2\nB,1\nB,2\n", r"at least 2 stimuli; too few in X \(1\)"),
    ("group\nX\nX\nY\nY\nA\nA\nB\nB\n", "no embedding columns"),
])
def test_bad_csv_files_get_a_message_that_says_what_to_fix(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(EmbeddingsFileError, match=message):
        read_embeddings(tmp_path / "bad.csv")


def test_bad_npz_files_and_formats(tmp_path):
    np.savez(tmp_path / "objects.npz", X=np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(EmbeddingsFileError, match="object arrays are not accepted"):
        read_embeddings(tmp_path / "objects.npz")
    np.savez(tmp_path / "keys.npz", foo=np.zeros((2, 2)))
    with pytest.raises(EmbeddingsFileError, match="must hold arrays X, Y, A and B, or 'embeddings' and 'groups'; "
                                                  "found foo"):
        read_embeddings(tmp_path / "keys.npz")
    sets = _sets()
    np.savez(tmp_path / "dims.npz", **{**sets, "B": np.zeros((3, 2))})
    with pytest.raises(EmbeddingsFileError, match="same dimension, got X 5, Y 5, A 5, B 2"):
        read_embeddings(tmp_path / "dims.npz")
    (tmp_path / "e.txt").write_text("x")
    with pytest.raises(EmbeddingsFileError, match=r"e.txt: upload a .csv or .npz file of embeddings, not .txt"):
        read_embeddings(tmp_path / "e.txt")
