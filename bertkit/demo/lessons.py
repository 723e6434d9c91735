"""What each step taught the model: the from-scratch model's held-out scores beside chance (and beside a real
encoder's where it has the heads), and each fine-tuning's learning curve (score by training examples seen)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

# the score each task's learning curve follows (the key in its evaluations), what the report calls it, and its scale
CURVE_METRICS = {"sentiment": ("accuracy", "accuracy", 1.0), "ner": ("f1", "entity F1", 1.0),
                 "qa": ("f1", "SQuAD F1 / 100", 100.0)}


def learning_curve(log: Path, task: str, examples_per_step: int) -> list[tuple[int, float]]:
    """(training examples seen, score) at each evaluation of a fine-tuning run's metrics.jsonl."""
    from bertkit.train.metrics_log import read_metrics

    key, _, scale = CURVE_METRICS[task]
    if not log.is_file():
        return []
    points = {}
    for row in read_metrics(log):
        if row.get("split") == "eval" and isinstance(row.get(key), (int, float)) and row.get("step"):
            points[int(row["step"]) * examples_per_step] = float(row[key]) / scale
    return sorted(points.items())


def curves_png(curves: dict[str, dict[str, Any]]) -> bytes | None:
    """One small panel per task: its score by training examples seen, with chance as a dashed line. None when
    matplotlib (the [plot] extra) is not installed."""
    from bertkit.errors import MissingExtraError
    from bertkit.utils.extras import pyplot

    try:
        plt = pyplot("the demo's learning curves")
    except MissingExtraError:
        return None
    shown = {task: curve for task, curve in curves.items() if curve["points"]}
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 2.8), squeeze=False)
    for ax, (task, curve) in zip(axes[0], shown.items()):
        xs, ys = zip(*curve["points"])
        ax.plot(xs, ys, "-o", markersize=4, linewidth=1.4, label="held-out score")
        if curve.get("chance") is not None:
            ax.axhline(curve["chance"], linestyle="--", color="grey", linewidth=1, label="chance")
        ax.set_title(f"{task} ({curve['language']})", fontsize=10)
        ax.set_xlabel("training examples seen", fontsize=8)
        ax.set_ylabel(CURVE_METRICS[task][1], fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def most_frequent_token(corpus: Path) -> tuple[str, float]:
    """The held-out text's most frequent token (special tokens aside) and its share of the tokens: the score of a
    model that always guesses it for a masked word."""
    import numpy as np

    from bertkit.data.corpus import TokenShards
    from bertkit.tokenizer import BertTokenizer

    shards = TokenShards(corpus, "valid")
    tokens = np.concatenate([np.asarray(s.tokens) for s in shards.shards]) if shards.shards else np.zeros(0, int)
    counts = np.bincount(tokens.astype(np.int64)) if tokens.size else np.zeros(1, int)
    counts[list(shards.special_ids.values())] = 0
    token_id = int(counts.argmax())
    tokenizer = BertTokenizer.from_pretrained(str(shards.tokenizer_folder))
    return tokenizer.convert_ids_to_tokens(token_id), float(counts[token_id] / max(1, counts.sum()))


def pretraining_lesson(metrics: dict[str, float], vocab_size: int, frequent: tuple[str, float]) -> str:
    """The from-scratch model's held-out masked-word and next-sentence accuracy beside chance."""
    token, share = frequent
    return (f"held-out masked-word accuracy {metrics.get('eval_mlm_acc', 0.0):.3f} (chance: {1 / vocab_size:.4f} "
            f"for a uniform guess, {share:.3f} for always {token!r}); next-sentence accuracy "
            f"{metrics.get('eval_nsp_acc', 0.0):.2f} (chance 0.50)")


def head_weights_present(folder: Path) -> bool:
    """Whether a checkpoint folder holds the MLM and NSP heads (a BertForPreTraining checkpoint), so its fill-mask
    and next-sentence answers can be compared with the from-scratch model's."""
    from bertkit.model import BertForPreTraining
    from bertkit.model.hf_checkpoint import missing_head_weights

    _, info = BertForPreTraining.from_pretrained(folder, output_loading_info=True)
    return not missing_head_weights(info)


def unknown_word_share(tokenizer: Any, texts: list[str]) -> float:
    """The share of white-space words the tokenizer turns into [UNK] (WordPiece gives up on a whole word when one
    of its characters is not in the vocabulary)."""
    unk = tokenizer.unk_token
    words = [w for text in texts for w in text.split()]
    if not words:
        return 0.0
    return sum(tokenizer.tokenize(w) == [unk] for w in words) / len(words)
