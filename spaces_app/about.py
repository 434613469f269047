"""Every text the Space shows: title, introductions, help, notes and messages."""

TITLE = "SpEAT: social bias in speech models"

INTRODUCTION = """
# SpEAT: social bias in self-supervised speech models

The **Speech Embedding Association Test** asks whether a model's embeddings tie one group of speakers (X, e.g.
female) more than another (Y, e.g. male) to pleasant rather than unpleasant speech. **d** is the effect size
(|d| ≥ 0.2 small, ≥ 0.5 medium, ≥ 0.8 large; positive: X sits closer to pleasant speech), **p** the one-sided
permutation p-value, **CI** the 95% bootstrap interval. The test is Slaughter et al.'s (2023), as used by Lin et
al. (2024) for wav2vec 2.0, HuBERT and MelHuBERT.
"""

SYNTHETIC_NOTE = ("**Synthetic stimuli.** Results on speat's embedded demo set (synthetic speech) check the pipeline; "
                  "they are **not a bias measurement** and are never ranked with results on the study's real "
                  "stimuli.")

LEADERBOARD_HELP = """
One row per model, revision and variant (layer, checkpoint, compression); rows of the same weights, stimuli and
settings are one row that names the others. **Click a column header to rank by it** (again to reverse), or a row to
open the model. More columns are under *Columns*: among them each test's Holm-adjusted p, its **rank (95%
interval)** among the results of the same stimuli, profile and pooling (e.g. `2 (1-4)`: second smallest |d|, and the
shared stimuli place it anywhere from 1st to 4th) and its **tier** (the models the stimuli cannot order against the
tier's first; — : no cosines kept, or nothing to rank with). Search takes several terms separated by `;`. Results on
real and on synthetic stimuli are ranked separately.
"""


def board_empty(stimuli: str, count: int) -> str:
    """What an empty leaderboard says: no results of this kind at all, or none that the filters let through."""
    if not count:
        if stimuli == "real":
            return ("No results on the study's real stimuli are loaded yet: `speat evaluate MODEL --stimuli speat` "
                    "makes them. The bundled examples are on synthetic stimuli (switch above).")
        return "No results on synthetic stimuli are loaded: `speat evaluate MODEL` on the demo set makes them."
    return "No row matches the search and filters: clear the search or tick fewer boxes."

REFERENCE_INTRO = """
## Published reference values

**These are not our measurements.** They are the numbers published by the studies, measured on real models and the
real stimuli, shown here for comparison. Positive d: the first group, X (female, U.S., young, ...), sits closer to
pleasant speech.

Slaughter et al.'s table holds all 12 tests they published, one row per test and model: the paper's label (T1-T12),
speat's test id (`speat evaluate MODEL --tests ID`), the groups as published, d and p. Their p are sampled from
1,000,000 permutations (`<1e-06`: no permutation reached the observed d), except T9's, exact over all 12,870 partitions.

**Native group sizes differ:** the SpEAT repository's (and speat's) US and Korean groups have **59** speakers each;
Lin et al. (2024) report **55**. Their *Native* numbers may come from a slightly different selection, so compare
them with care.
"""

COMPARISON_HELP = """
### Our measurements beside the published ones

Our results on the **real** stimuli (never the synthetic demo set) of the models the studies measured, matched by
name (`facebook/hubert-base-ls960` matches SpEAT's `hubert_base_ls960`; `mfcc` matches Lin et al.'s MFCC).
"""

NO_COMPARISON = ("None of the loaded results on real stimuli is of a model the studies measured (the bundled "
                 "example records use synthetic stimuli). Evaluate one, e.g. "
                 "`speat evaluate facebook/hubert-base-ls960 --stimuli speat`, and load its results here.")

PLOTS_HELP = """
Each d is drawn with its 95% confidence interval (band or error bars). Training steps: Lin et al. (2024) Figure 1.
Pruning: Figure 2 (the dashed line is the unpruned model's d). Distillation: Figure 3 ("base" is the teacher).
"""

TRAINING_EMPTY = ("No model with results at two or more checkpoints on these stimuli. `speat evaluate RUN_DIR` on a "
                  "directory of checkpoints (checkpoint-1000/, ...) makes them.")
PRUNING_EMPTY = "No pruning results on these stimuli. `speat prune {heads,rows,weights} MODEL` makes them."
DISTILLATION_EMPTY = "No distillation results on these stimuli. `speat distill TEACHER --layers 2,4,6` makes them."
LAYERS_EMPTY = "No per-layer results on these stimuli. `speat evaluate MODEL --pooling per-layer` makes them."

DETAIL_EMPTY = "Choose a model to see all its results, how each was made and the command that reproduces it."

EXPLAIN_HELP = """
Which speakers drive d? Every target's association score s(w) (mean cosine with pleasant minus mean cosine with
unpleasant speech) for X and Y. **Influence** is how much d drops when that target is left out: the targets at the
top of the table move d most.
"""

NO_SCORES = ("Per-stimulus scores are **not available for this record**: it was written before speat recorded them "
             "(record schema version 1). Re-run `speat evaluate` to get them.")

UPLOAD_HELP = """
### Your own embeddings

Upload a **CSV** with a `group` column (`X`, `Y`, `A` or `B`), an optional `id` column and one numeric column per
embedding dimension, or an **NPZ** with arrays `X`, `Y`, `A`, `B` (rows = stimuli) or `embeddings` and `groups`.
The SpEAT runs through the `evaluate` module (`evaluate.load("speat")`), exactly as on your machine.
"""

MODEL_HELP = """
### A Hub model

Evaluates a speech encoder (wav2vec 2.0, HuBERT, WavLM, data2vec-audio, Whisper, or `random:melhubert-small`) with
`speat evaluate`'s pipeline. Jobs run one at a time; you see your place in the queue and the progress.
"""

MODEL_EVALUATION_DISABLED = (
    "Evaluating models is **turned off** here: it needs minutes of CPU (or a GPU) and memory for each model. Run "
    "`speat evaluate MODEL` on your machine, start the Space locally with `speat space --evaluate-models`, or set "
    "`SPEAT_SPACE_EVALUATE_MODELS=1` in a Space that has the hardware.")

CITATION = """
### Citation

- A. Caliskan, J. J. Bryson, A. Narayanan. Semantics derived automatically from language corpora contain human-like
  biases. *Science* 356(6334), 2017.
- I. Slaughter, C. Greenberg, R. Schwartz, A. Caliskan. Pre-trained speech processing models contain human-like
  biases that propagate to speech emotion recognition. *Findings of EMNLP*, 2023.
- Y.-C. Lin, T.-Q. Lin, H.-C. Lin, A. T. Liu, H.-y. Lee. On the social bias of speech self-supervised models.
  *Interspeech*, 2024.
"""


def source_line(origin: str, records: int, superseded: int) -> str:
    rerun = f", {superseded} older re-runs left out" if superseded else ""
    return f"**Data:** {origin} · {records} results{rerun}"


def warnings_text(warnings: tuple[str, ...]) -> str:
    if not warnings:
        return ""
    lines = "\n".join(f"- {warning}" for warning in warnings)
    return f"⚠️ **{len(warnings)} file(s) skipped** (the rest loaded normally):\n\n{lines}"
