"""Generate the synthetic example embeddings shipped as speat_metric/data/example_embeddings.npz.

They are a worked example of the statistics, not a measurement: four groups of 64-dimensional vectors around a
shared centre, with X nudged towards the mean of A and Y towards the mean of B, so the test has something to find.

    python scripts/make_example_embeddings.py
"""

from pathlib import Path

import numpy as np

SEED = 20240601
DIMENSION = 64
SIZES = {"X": 16, "Y": 14, "A": 12, "B": 12}
OUTPUT = Path(__file__).resolve().parents[1] / "speat_metric" / "data" / "example_embeddings.npz"


def main() -> None:
    rng = np.random.default_rng(SEED)
    centre = rng.normal(0, 1, DIMENSION)
    pleasant, unpleasant = rng.normal(0, 1, DIMENSION), rng.normal(0, 1, DIMENSION)
    means = {"A": centre + pleasant, "B": centre + unpleasant,
             "X": centre + 0.3 * pleasant, "Y": centre + 0.3 * unpleasant}
    groups = {role: rng.normal(means[role], 1.5, (size, DIMENSION)) for role, size in SIZES.items()}
    np.savez_compressed(OUTPUT, **{role: vectors.astype(np.float32) for role, vectors in groups.items()})
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
