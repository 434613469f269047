"""DistilHuBERT-style layer-wise distillation of speech SSL models with bias tracking, driven by `accelerate`.

``speat distill TEACHER --data DIR`` (`speat_metric.distill.cli`) resolves the recipe (`speat_metric.distill.config`,
YAML defaults in ``distill/configs``), builds students from the teacher (`speat_metric.distill.student`), trains them on
DistilHuBERT's loss over crops the teacher hears clean and the student optionally noisy
(`speat_metric.distill.objective`, `speat_metric.distill.noise`), with the training machinery shared with pruning
(`speat_metric.training`), and draws Figure 3 of Lin et al. 2024 (`speat_metric.distill.report`).
`speat_metric.distill.train.distill` is the run, top to bottom.
"""
