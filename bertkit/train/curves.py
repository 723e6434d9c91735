"""Loss and accuracy curves of a metrics log (`bertkit plot LOG.jsonl --output curves.png`).

One panel per metric found in the log (loss, MLM accuracy, NSP accuracy, learning rate), train and eval
series on the same axes. matplotlib is imported only here, and only when a plot is drawn.
"""
from __future__ import annotations

import os
from pathlib import Path

from bertkit.errors import UserError
from bertkit.files import check_text_file
from bertkit.train.metrics_log import read_metrics
from bertkit.utils.extras import pyplot

# (panel title, train key, eval key)
PANELS = [
    ("MLM loss", "mlm_loss", "mlm_loss"),
    ("MLM accuracy", "mlm_acc", "mlm_acc"),
    ("NSP accuracy", "nsp_acc", "nsp_acc"),
    ("loss (train: MLM + NSP)", "loss", None),
    ("learning rate", "lr", None),
    ("tokens / s", "tokens_per_s", None),
]


def plot_metrics(log_path: str | os.PathLike, out_path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the curves of `log_path` into `out_path` (PNG); returns the path."""
    plt = pyplot("plotting")
    check_text_file(log_path, "metrics log")  # a binary file is named, not a bare decoding error
    rows = read_metrics(log_path)
    splits: dict[str, list[dict]] = {}
    for row in rows:
        if "step" in row:
            splits.setdefault(row.get("split", "train"), []).append(row)
    if not splits:
        raise UserError(f"{log_path} holds no rows with a step; is it a bertkit metrics.jsonl?")
    panels = [p for p in PANELS if any(p[1] in r for r in splits.get("train", [])) or
              (p[2] and any(p[2] in r for r in splits.get("eval", [])))]
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, (name, train_key, eval_key) in zip(axes.flat, panels):
        for split, key, style in (("train", train_key, "-"), ("eval", eval_key, "o-")):
            points = [(r["step"], r[key]) for r in splits.get(split, []) if key and r.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, label=split, markersize=3, linewidth=1.2)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title or str(log_path))
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
