"""Training machinery shared by compression recipes (``speat prune``, ``speat distill``).

`data` (training audio and crops), `loop` (accelerator, training steps, progress), `checkpoints` (resumable
states), `bias_tracking` (SpEAT of a model under compression), `plots` (the curve of d), `models` (the encoder a
recipe trains), `slicing` (pruning's view of transformer layers; torch only), `config` (typed YAML recipes) and `cli`
(the options every recipe command has). docs/pruning.md ("The training machinery") describes each and how a
recipe's training function uses them.
"""
