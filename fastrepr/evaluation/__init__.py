"""Evaluation of representations: disentanglement metrics (``disentanglement``), native gradient boosting
(``boosting``), built-in representations (``representations``)."""
