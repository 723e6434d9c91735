"""Fine-tuning recipes for the three downstream tasks of the seeds, and their commands.

- `classification`: CSV / TSV / JSONL readers, label maps, the seed's 70/30 split, features (single texts,
  pairs, multi-label, regression).
- `ner`: CoNLL / JSONL readers, BIO / IOBES tags, labels on the first sub-word (or all) via word_ids().
- `qa`: SQuAD v1.1 / v2.0 / KorQuAD reader, windowed features, n-best post-processing.
- `metrics`: accuracy / macro-F1 / per-class report, seqeval-equal entity F1, official SQuAD EM / F1.
- `evaluate`: the evaluations the recipes (`bertkit.train.recipes`) run every epoch (`evaluate_*`).
- `registry`: every task once (`TaskSpec`).

Import the submodule you need; this package imports nothing heavy by itself.
"""
