"""How far d moves when the same clips are batched differently: padded batches against one clip per batch.

Models that take an attention mask are fed padded batches; a clip's frames are then computed with other clips
beside it, and float32 matrix products sum in a different order, so its embedding can differ in the last bits. This
runs the demo stimuli (all three tests) through a random base-size wav2vec 2.0 with layer-norm feature extraction
(the layout of wav2vec2-large-lv60, which is batched with padding) twice, side by side in this run: batched
(``--batch-seconds 60``, the default) and one clip per batch, and prints each test's d both ways and the largest
difference, for float32 and bfloat16 (where the model passes the load-time padding check).

    .venv/bin/python benchmarks/batching_sensitivity.py
"""

import tempfile
from pathlib import Path

import torch
import transformers

from speat_metric.adapters.transformers_encoder import TransformersEncoder
from speat_metric.pipeline import evaluate_tests
from speat_metric.stimuli import load_speat_test

TESTS = ("gender", "age", "native")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="speat-batching-"))
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(feat_extract_norm="layer", do_stable_layer_norm=True)
    transformers.Wav2Vec2Model(config).save_pretrained(work / "model")
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(work / "model")
    tests = {name: load_speat_test(name, source="demo", progress=False) for name in TESTS}
    print(f"random base-size wav2vec 2.0, layer-norm feature extractor, demo stimuli, {torch.get_num_threads()} "
          "torch threads")
    for dtype in ("float32", "bfloat16"):
        encoder = TransformersEncoder(work / "model", dtype=dtype)
        if not encoder.supports_padding:
            print(f"  {dtype}: the load-time padding check fails (rounding beyond its tolerance), so the pipeline "
                  "never pads it (batches hold clips of one length only)")
            continue
        effect_sizes = {}
        for label, batch_seconds in (("batched", 60.0), ("one clip per batch", 1e-3)):
            records = evaluate_tests(encoder, tests, batch_seconds=batch_seconds, num_permutations=100,
                                     progress=False)
            effect_sizes[label] = {record.test: record.speat.effect_size for record in records}
        differences = {test: abs(effect_sizes["batched"][test] - effect_sizes["one clip per batch"][test])
                       for test in TESTS}
        print(f"  {dtype}: " + ", ".join(f"{test} d {effect_sizes['batched'][test]:+.10f} batched vs "
                                         f"{effect_sizes['one clip per batch'][test]:+.10f} alone"
                                         for test in TESTS))
        print(f"  {dtype}: max |d(batched) - d(one clip per batch)| = {max(differences.values()):.2e} "
              f"(relative {max(differences[t] / abs(effect_sizes['batched'][t]) for t in TESTS):.2e})")


if __name__ == "__main__":
    main()
