"""Pretraining data: raw text -> token shards (`corpus`), examples (`pretraining`), dynamic masking (`masking`).

    from bertkit.data.corpus import prepare_corpus, TokenShards
    from bertkit.data.pretraining import PretrainingDataset, PretrainingSampler
    from bertkit.data.masking import Masker, PretrainingCollator

Batches for fine-tuning: `collators` (`PaddingCollator`, and HF's `DataCollatorWithPadding`,
`DataCollatorForTokenClassification`, `DataCollatorForLanguageModeling`, `DataCollatorForWholeWordMask`).
"""
