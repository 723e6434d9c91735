"""The WordPiece tokenizer: BERT normalization, greedy WordPiece, HuggingFace's BertTokenizer surface.

`train_wordpiece` lives in bertkit.tokenizer.vocab_trainer (imported lazily by `bertkit`).
"""
from __future__ import annotations

from bertkit.tokenizer.added_tokens import AddedToken
from bertkit.tokenizer.encoding import BatchEncoding, Encoding
from bertkit.tokenizer.normalize import BertPreTokenizer
from bertkit.tokenizer.tokenizer import AutoTokenizer, BertTokenizer, BertTokenizerFast

__all__ = ["AddedToken", "AutoTokenizer", "BatchEncoding", "BertPreTokenizer", "BertTokenizer", "BertTokenizerFast", "Encoding"]
