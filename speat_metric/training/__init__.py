"""Training machinery shared by compression recipes (``speat prune``, ``speat distill``).

- `data`: training audio (a folder of WAV/FLAC/MP3 at any rate, or a ``datasets`` audio column read undecoded),
  reproducible random crops, unreadable recordings reported and skipped, and the dataloader.
- `loop`: the ``Accelerator`` (gradient accumulation, mixed precision where the hardware has it, trackers) and a
  progress bar over optimiser steps.
- `checkpoints`: ``save_state`` / ``load_state`` checkpoints with the recipe's position, and which one to resume.
- `bias_tracking`: SpEAT of a model under compression, appended as `EvaluationRecord`s with ``compression`` filled.
- `plots`: the curve of d against a compression measure, as PNG, CSV and Markdown.
- `models`: the encoder a recipe trains (loaded through the adapters, its inputs, hidden states and checkpoints).
- `slicing`: the protocol through which pruning sees any encoder's transformer layers, slicing their heads and FFN
  dimensions, and the layout of what remains (a leaf: torch only, so the adapters use it too).
- `config`: typed YAML recipes (defaults, a user's ``--config``, options; every value checked) and their shared
  sections (data, training, tracking).
- `cli`: the options every recipe command has, and checking a ``--resume`` against the run's saved settings.

A recipe's training function reads top to bottom: config, data, model, ``accelerator.prepare``, resume, the loop
(with its pruning or distillation steps), checkpoints and bias evaluations, the curve.
"""
