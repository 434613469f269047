"""Head, row (FFN) and weight pruning of speech SSL models under `accelerate`, with SpEAT measured at every step.

``speat prune {heads,rows,weights} MODEL --data AUDIO --out RUN`` (``python -m speat_metric.pruning``, ``accelerate
launch -m speat_metric.pruning``). The recipe of Lin et al. (2024) is the default (``pruning/configs/*.yaml``);
`speat_metric.pruning.train.prune` runs it; the shared machinery (data, accelerate loop, checkpoints, bias tracking,
curves) is `speat_metric.training`.

- `config`: typed settings from the YAML configs, a ``--config`` file and the options.
- `models`: the model being pruned (loading, inputs, hidden states, checkpoints).
- `structured`: head and row scores and the pruning of the lowest ones.
- `weights`: global magnitude masks and the loss-plateau trigger.
- `methods`: the three methods as schedules the loop consults.
- `objectives`: the fine-tuning losses (teacher, wav2vec2's and MelHuBERT's own).
- `train`: the run, top to bottom.
- `cli`: ``speat prune``.
"""
