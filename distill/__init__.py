"""DistilHuBERT-style layer-wise distillation of speech SSL models with bias tracking, driven by `accelerate`.

``speat distill TEACHER --data DIR`` (`distill.cli`) resolves the recipe (`distill.config`, YAML defaults in
``distill/configs``), builds students from the teacher (`distill.student`), trains them on DistilHuBERT's loss over
crops the teacher hears clean and the student optionally noisy (`distill.objective`, `distill.noise`), with the
training machinery shared with pruning (`speat_metric.training`), and draws Figure 3 of Lin et al. 2024
(`distill.report`). `distill.train.distill` is the run, top to bottom.
"""
