"""Shared training pieces, reused by every recipe (pretraining here, fine-tuning in `bertkit.tasks`).

- `bertkit.train.optim`: `build_optimizer` (AdamW, fused on CUDA, or LAMB; no weight decay on LayerNorm/bias)
  and `linear_warmup_decay` (the BERT learning-rate schedule); HuggingFace's `AdamW`, `get_scheduler` and
  `get_{linear,cosine,constant}_schedule_with_warmup`.
- `bertkit.train.checkpoint`: `save_checkpoint` (atomic, HF layout + optimizer/scheduler/RNG/extra state),
  `load_checkpoint`, `latest_checkpoint` (exact resume).
- `bertkit.train.metrics_log`: `MetricsLogger` (one JSON object per line), `read_metrics`.
- `bertkit.train.distributed`: torchrun detection, process group, DDP wrap, rank-aware printing.
- `bertkit.train.pretrain_recipe`: the pretraining recipe (`bertkit pretrain`, `pretrain(config)`).
- `bertkit.train.curves`: `bertkit plot LOG.jsonl --out curves.png`.

Import the submodule you need; this package imports nothing heavy by itself.
"""
