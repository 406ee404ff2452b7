"""Evaluation of representations: word benchmarks (``words``), probes (``probes``), disentanglement metrics
(``disentanglement``), native gradient boosting (``boosting``), built-in representations (``representations``)."""
