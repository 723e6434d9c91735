"""`bertkit demo`: the seeds' journey end to end on the bundled samples, on CPU, with no network.

    bertkit demo                       # a few minutes on a laptop CPU; writes demo-output/report.html
    bertkit demo --quick               # under a minute: smaller model, fewer steps
    bertkit demo --out runs/demo

    from bertkit.demo import run_demo
    summary = run_demo("runs/demo", quick=True)      # the metrics; the report is summary["report"]

The steps, each of which is also its own command (the demo prints it as it goes):
 1. train a WordPiece vocabulary on bertkit/samples/wiki_en.txt     bertkit train-tokenizer
 2. cut the text into pretraining shards                            bertkit prepare-corpus
 3. pretrain a tiny BERT with MLM + NSP                             bertkit pretrain
 4. fill-mask and next-sentence predictions with it                 bertkit fill-mask / bertkit nsp
 5. sentence embeddings and their cosine similarities               bertkit embed
 6. fine-tune and evaluate a sentiment classifier                   bertkit finetune classify / evaluate
 7. fine-tune and run NER                                           bertkit finetune ner
 8. fine-tune and run extractive QA                                 bertkit finetune qa
 9. an attention map, then the HTML report (loss curves, metrics)  bertkit attention / bertkit plot

The samples are tiny (120 KB of Wikipedia, a few dozen labelled sentences), so the numbers show the
machinery working, not a useful model: see docs/finetuning.md for real data and real scores.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).parent / "samples"
TASKS = SAMPLES / "tasks"
CORPUS = SAMPLES / "wiki_en.txt"
# the folders the demo writes under --out (and clears first, so a second run starts clean)
STEP_FOLDERS = ("tokenizer", "corpus", "pretrain", "sentiment", "ner", "qa")

# sentences from the corpus with one word masked: a tiny model trained on it may recall them
FILL_MASK_EXAMPLES = [
    ("The Buena Vista mine produced more than 15,000 flasks of [MASK].", "mercury"),
    ("He graduated from the Leningrad State [MASK] in 1969.", "university"),
    ("Clements was born on 23 March 1962 in [MASK], Australia.", "sydney"),
]
EMBEDDING_EXAMPLES = [
    "The Klau Mine opened in 1868 and yielded nearly 18,000 flasks of mercury.",
    "The Buena Vista mine produced more than 15,000 flasks of mercury.",
    "Clements was born on 23 March 1962 in Sydney, Australia.",
    "In her youth, Clements attended Sylvania High School.",
]
NER_EXAMPLE = "Marie Curie moved from Warsaw to Paris to work at the Sorbonne."
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


FULL = DemoSize(vocab_size=2000, hidden_size=128, num_layers=2, num_heads=2, max_seq_length=64,
                pretrain_steps=1500, pretrain_batch=16, pretrain_lr=2e-3, finetune_lr=5e-4,
                sentiment_epochs=8, ner_epochs=20, qa_epochs=20, qa_max_seq_length=160)
# --quick checks that every step runs (the test suite uses it): the numbers mean nothing
QUICK = DemoSize(vocab_size=600, hidden_size=32, num_layers=2, num_heads=2, max_seq_length=64,
                 pretrain_steps=20, pretrain_batch=8, pretrain_lr=1e-3, finetune_lr=5e-4,
                 sentiment_epochs=1, ner_epochs=2, qa_epochs=1, qa_max_seq_length=96)


class Journey:
    """Runs the steps in order, prints each with its stand-alone command, and builds the report."""

    def __init__(self, out: Path, size: DemoSize, device: str, seed: int, quick: bool) -> None:
        from bertkit.report import Report

        self.out, self.size, self.device, self.seed = out, size, device, seed
        self.summary: dict[str, Any] = {"size": asdict(size), "quick": quick, "timings_s": {}}
        mode = "quick" if quick else "full"
        self.report = Report("bertkit demo: BERT end to end on the bundled samples",
                             subtitle=f"{mode} run, seed {seed}, device {device}; output in {out}. The samples are "
                                      "tiny: the numbers show every step working, not a useful model.")
        self.step_number = 0
        self.finetune_logs: dict[str, Path] = {}  # task -> its metrics.jsonl, for the loss chart

    def step(self, title: str, command: str) -> Any:
        self.step_number += 1
        print(f"\n[{self.step_number}/9] {title}\n    alone: {command}", flush=True)
        section = self.report.section(f"{self.step_number}. {title}")
        section.code(command)
        return section

    def timed(self, name: str, started: float) -> None:
        self.summary["timings_s"][name] = round(time.perf_counter() - started, 2)

    # 1 ---------------------------------------------------------------------------------------
    def train_tokenizer(self) -> Any:
        from bertkit.tokenizer.trainer import train_wordpiece

        folder = self.out / "tokenizer"
        section = self.step("Train a WordPiece vocabulary",
                            f"bertkit train-tokenizer {CORPUS} --vocab-size {self.size.vocab_size} -o {folder}")
        started = time.perf_counter()
        tokenizer = train_wordpiece(CORPUS, vocab_size=self.size.vocab_size, show_progress=True)
        tokenizer.save_pretrained(folder)
        self.timed("tokenizer", started)
        rows = []
        for text in ("He moved to Paris at the age of 15.", "Unbelievable jewellery from Vendôme!"):
            tokens = tokenizer.tokenize(text)
            rows.append({"text": text, "tokens": " ".join(tokens)})
            print(f"    {text!r} -> {tokens}")
        vocab_size = len(tokenizer.vocab)
        print(f"    {vocab_size} tokens in {folder / 'vocab.txt'}")
        section.text(f"{vocab_size} tokens learned from {CORPUS.name} (special tokens, the alphabet, then merges).")
        section.table(rows)
        self.summary["tokenizer"] = {"vocab_size": vocab_size, "folder": str(folder)}
        return tokenizer

    # 2-3 -------------------------------------------------------------------------------------
    def pretrain(self, tokenizer: Any) -> Path:
        from bertkit.data.corpus import prepare_corpus
        from bertkit.train.plot import plot_metrics
        from bertkit.train.pretrain import PretrainConfig, pretrain

        corpus = self.out / "corpus"
        section = self.step("Cut the text into pretraining shards",
                            f"bertkit prepare-corpus {CORPUS} --tokenizer {self.out / 'tokenizer'} "
                            f"--out {corpus} --valid-fraction 0.1")
        started = time.perf_counter()
        header = prepare_corpus([CORPUS], corpus, tokenizer, valid_fraction=0.1, seed=self.seed)
        self.timed("prepare_corpus", started)
        tokens = {split: sum(s["tokens"] for s in shards) for split, shards in header["splits"].items()}
        print(f"    {header['documents']} documents: {tokens['train']:,} train / {tokens['valid']:,} held-out tokens")
        section.text(f"{header['documents']} documents, {tokens['train']:,} training tokens, "
                     f"{tokens['valid']:,} held-out tokens.")

        size, run = self.size, self.out / "pretrain"
        config = PretrainConfig(
            data=str(corpus), out=str(run), hidden_size=size.hidden_size, num_hidden_layers=size.num_layers,
            num_attention_heads=size.num_heads, intermediate_size=4 * size.hidden_size,
            max_seq_length=size.max_seq_length, batch_size=size.pretrain_batch, max_steps=size.pretrain_steps,
            lr=size.pretrain_lr, warmup_steps=0.1, log_every=max(1, size.pretrain_steps // 40),
            eval_every=max(1, size.pretrain_steps // 4), eval_examples=64, save_every=size.pretrain_steps,
            keep_last=1, device=self.device, seed=self.seed, resume=False,
        )
        section = self.step(
            "Pretrain a tiny BERT with MLM + NSP",
            f"bertkit pretrain --data {corpus} --out {run} --hidden-size {size.hidden_size} "
            f"--num-hidden-layers {size.num_layers} --num-attention-heads {size.num_heads} "
            f"--intermediate-size {4 * size.hidden_size} --max-seq-length {size.max_seq_length} "
            f"--batch-size {size.pretrain_batch} --max-steps {size.pretrain_steps} --lr {size.pretrain_lr}",
        )
        started = time.perf_counter()
        checkpoint = pretrain(config)
        self.timed("pretrain", started)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        last = {split: next((r for r in reversed(rows) if r.get("split") == split), {}) for split in ("train", "eval")}
        metrics = {f"{split}_{key}": last[split][key] for split in last for key in
                   ("mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc") if key in last[split]}
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        curves = plot_metrics(run / "metrics.jsonl", self.out / "pretrain_curves.png", title="pretraining")
        section.text(f"{size.num_layers} layers, {size.hidden_size} wide, {size.num_heads} heads; "
                     f"{size.pretrain_steps} steps of {size.pretrain_batch} sequences; checkpoint {checkpoint}.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items()])
        section.image(curves, alt="pretraining curves")
        self.summary["pretrain"] = {**metrics, "checkpoint": str(checkpoint), "steps": size.pretrain_steps}
        return Path(checkpoint)

    # 4 ---------------------------------------------------------------------------------------
    def predict_masks_and_next_sentences(self, checkpoint: Path) -> None:
        from bertkit.model import BertForPreTraining
        from bertkit.pipelines import pipeline

        section = self.step("Fill-mask and next-sentence prediction",
                            f'bertkit fill-mask --model {checkpoint} "{FILL_MASK_EXAMPLES[0][0]}"  |  '
                            f'bertkit nsp --model {checkpoint} "sentence A" "sentence B"')
        model = BertForPreTraining.from_pretrained(checkpoint)  # one model, both heads
        unmasker = pipeline("fill-mask", model=model, tokenizer=checkpoint, top_k=5)
        rows, hits = [], 0
        for text, answer in FILL_MASK_EXAMPLES:
            predictions = unmasker(text)
            words = [p["token_str"] for p in predictions]
            hits += answer in words
            rows.append({"text": text, "answer": answer,
                         "top 5": ", ".join(f"{p['token_str']} ({p['score']:.2f})" for p in predictions)})
            print(f"    {text}\n      -> {rows[-1]['top 5']}")
        section.text("Top-5 words for each [MASK] (the expected word is what the corpus says). A few hundred steps "
                     "on some 30,000 tokens mostly teach a model which words are frequent; BERT itself was "
                     "pretrained for a million steps on 3.3 billion words.")
        section.table(rows)

        nsp = pipeline("next-sentence-prediction", model=model, tokenizer=checkpoint)
        pairs = next_sentence_pairs(CORPUS)
        results = nsp([(a, b) for a, b, _ in pairs])
        nsp_rows = []
        for (a, b, truth), result in zip(pairs, results):
            nsp_rows.append({"sentence A": a, "sentence B": b, "truth": truth, "predicted": result["label"],
                             "P(IsNext)": result["probabilities"]["IsNext"]})
            print(f"    {truth:>7}: P(IsNext)={result['probabilities']['IsNext']:.3f}  {a[:40]}... / {b[:40]}...")
        section.table(nsp_rows)
        self.summary["fill_mask"] = {"answers_in_top5": hits, "examples": len(FILL_MASK_EXAMPLES)}
        self.summary["nsp"] = {"correct": sum(r["truth"] == r["predicted"] for r in nsp_rows), "pairs": len(nsp_rows)}

    # 5 ---------------------------------------------------------------------------------------
    def embed(self, checkpoint: Path) -> None:
        import numpy as np

        from bertkit.pipelines import pipeline

        section = self.step("Sentence embeddings",
                            f'bertkit embed --model {checkpoint} "{EMBEDDING_EXAMPLES[0]}" "{EMBEDDING_EXAMPLES[2]}"')
        extractor = pipeline("feature-extraction", model=checkpoint)
        vectors = extractor.encode(EMBEDDING_EXAMPLES, pooling="mean", normalize=True)
        similarity = vectors @ vectors.T
        rows = []
        for i, text in enumerate(EMBEDDING_EXAMPLES):
            rows.append({"sentence": text, **{f"#{j + 1}": float(similarity[i, j]) for j in range(len(EMBEDDING_EXAMPLES))}})
            print(f"    #{i + 1} " + " ".join(f"{v:.2f}" for v in similarity[i]) + f"  {text[:50]}")
        section.text(f"Mean-pooled, L2-normalized {vectors.shape[1]}-dim vectors; the table is their cosine "
                     "similarity (#1-#2 and #3-#4 come from the same article).")
        section.table(rows)
        same = float(np.mean([similarity[0, 1], similarity[2, 3]]))
        other = float(np.mean([similarity[0, 2], similarity[0, 3], similarity[1, 2], similarity[1, 3]]))
        self.summary["embeddings"] = {"dim": int(vectors.shape[1]), "same_article_cosine": same,
                                      "other_article_cosine": other}

    # 6-8 -------------------------------------------------------------------------------------
    def finetune_config(self, task: str, epochs: int, batch_size: int) -> Any:
        from bertkit.train.finetune import FinetuneConfig

        return FinetuneConfig(output_dir=str(self.out / task), epochs=epochs, batch_size=batch_size,
                              learning_rate=self.size.finetune_lr, warmup_ratio=0.1, log_every=2,
                              device=self.device, seed=self.seed)

    def sentiment(self, checkpoint: Path) -> None:
        from bertkit.pipelines import pipeline
        from bertkit.train.finetune import finetune_classifier

        train, dev, folder = TASKS / "sentiment_train.tsv", TASKS / "sentiment_dev.tsv", self.out / "sentiment"
        epochs = self.size.sentiment_epochs
        section = self.step("Fine-tune and evaluate a sentiment classifier",
                            f"bertkit finetune classify --model {checkpoint} --train {train} --eval {dev} "
                            f"--output {folder} --epochs {epochs} --lr {self.size.finetune_lr}  |  "
                            f"bertkit evaluate --model {folder} --data {dev}")
        started = time.perf_counter()
        result = finetune_classifier(checkpoint, train, dev, self.finetune_config("sentiment", epochs, 8))
        self.timed("sentiment", started)
        metrics = numbers(result["eval"])
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        classifier = pipeline("sentiment-analysis", model=folder)
        examples = ["a charming and often affecting journey", "a dull , lifeless and boring film"]
        predictions = classifier(examples)
        for text, prediction in zip(examples, predictions):
            print(f"    {prediction['label']} ({prediction['score']:.2f})  {text}")
        section.text(f"{result['train_examples']} training and {result['eval_examples']} evaluation sentences "
                     "(SST-2 movie reviews; 1 = positive).")
        section.table([{"metric": k, "value": v} for k, v in metrics.items()])
        section.table([{"text": t, "label": p["label"], "score": p["score"]} for t, p in zip(examples, predictions)])
        self.summary["sentiment"] = metrics
        self.finetune_logs["sentiment"] = folder / "metrics.jsonl"

    def ner(self, checkpoint: Path) -> None:
        from bertkit.pipelines import pipeline
        from bertkit.train.finetune import finetune_ner

        train, dev, folder = TASKS / "ner_train.conll", TASKS / "ner_dev.conll", self.out / "ner"
        epochs = self.size.ner_epochs
        section = self.step("Fine-tune and run named entity recognition",
                            f"bertkit finetune ner --model {checkpoint} --train {train} --eval {dev} "
                            f"--output {folder} --epochs {epochs} --lr {self.size.finetune_lr}")
        started = time.perf_counter()
        result = finetune_ner(checkpoint, train, dev, self.finetune_config("ner", epochs, 4))
        self.timed("ner", started)
        metrics = numbers(result["eval"])
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
        entities = pipeline("ner", model=folder, aggregation_strategy="simple")(NER_EXAMPLE)
        for entity in entities:
            print(f"    {entity['entity_group']:>4} {entity['word']!r} ({entity['score']:.2f})")
        section.text(f"Entity-level precision / recall / F1 on {result['eval_examples']} held-out sentences.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items() if not isinstance(v, dict)])
        section.text(f"Entities in: {NER_EXAMPLE}")
        section.table([{k: e[k] for k in ("entity_group", "word", "score", "start", "end")} for e in entities])
        self.summary["ner"] = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
        self.finetune_logs["ner"] = folder / "metrics.jsonl"

    def qa(self, checkpoint: Path) -> None:
        from bertkit.pipelines import pipeline
        from bertkit.train.finetune import finetune_qa

        train, dev, folder = TASKS / "qa_train.json", TASKS / "qa_dev.json", self.out / "qa"
        epochs, length = self.size.qa_epochs, self.size.qa_max_seq_length
        section = self.step("Fine-tune and run extractive question answering",
                            f"bertkit finetune qa --model {checkpoint} --train {train} --eval {dev} "
                            f"--output {folder} --epochs {epochs} --max-seq-length {length} --doc-stride {length // 2}")
        started = time.perf_counter()
        result = finetune_qa(checkpoint, train, dev, self.finetune_config("qa", epochs, 4),
                             max_seq_length=length, doc_stride=length // 2)
        self.timed("qa", started)
        metrics = numbers(result["eval"])
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
        article = json.loads(dev.read_text(encoding="utf-8"))["data"][0]["paragraphs"][0]
        question, context = article["qas"][0]["question"], article["context"]
        answer = pipeline("question-answering", model=folder)(question=question, context=context)
        print(f"    Q: {question}\n    A: {answer['answer']!r} ({answer['score']:.2f})")
        section.text(f"SQuAD exact match and F1 on {result['eval_examples']} held-out questions.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items()])
        section.table([{"question": question, "answer": answer["answer"], "score": answer["score"],
                        "expected": article["qas"][0]["answers"][0]["text"]}])
        self.summary["qa"] = metrics
        self.finetune_logs["qa"] = folder / "metrics.jsonl"

    # 9 ---------------------------------------------------------------------------------------
    def attention(self, checkpoint: Path) -> None:
        from bertkit.model import BertModel
        from bertkit.serve.attention import attention_html
        from bertkit.tokenizer import BertTokenizer

        page_path = self.out / "attention.html"
        section = self.step("Attention map",
                            f'bertkit attention "{ATTENTION_EXAMPLE}" --model {checkpoint} --out {page_path}')
        page = attention_html(BertModel.from_pretrained(checkpoint), BertTokenizer.from_pretrained(checkpoint),
                              ATTENTION_EXAMPLE)
        page_path.write_text(page, encoding="utf-8")
        print(f"    attention view: {page_path}")
        section.text("Which tokens each token attends to, per layer and head, in the pretrained model "
                     "(pick a layer and head; the same view as `bertkit attention`).")
        section.frame(page)

    def finetuning_curves(self) -> None:
        from bertkit.report import line_chart
        from bertkit.train.logging import read_metrics

        series = {task: [(row["step"], row["loss"]) for row in read_metrics(log)
                         if row.get("split") == "train" and "loss" in row]
                  for task, log in self.finetune_logs.items() if log.is_file()}
        section = self.report.section("Fine-tuning loss curves")
        section.image(line_chart(series, "fine-tuning: training loss", "loss"), alt="fine-tuning loss")


def numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics (per-class reports and the like stay out of the summary tables)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def next_sentence_pairs(corpus: Path) -> list[tuple[str, str, str]]:
    """Two true next sentences and two random ones, from the corpus's documents (blank-line separated)."""
    documents = [[line for line in block.splitlines() if line.strip()]
                 for block in corpus.read_text(encoding="utf-8").split("\n\n")]
    documents = [d for d in documents if len(d) >= 4]
    first, second = documents[1], documents[len(documents) // 2]
    return [(first[0], first[1], "IsNext"), (second[2], second[3], "IsNext"),
            (first[0], second[3], "NotNext"), (second[2], first[1], "NotNext")]


def run_demo(out: str | Path = "demo-output", quick: bool = False, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Run every step; returns the summary (metrics, timings, `report` path), also saved as summary.json."""
    out = Path(out)
    for name in STEP_FOLDERS:  # a previous run's checkpoints must not be resumed or mixed in
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    journey = Journey(out, QUICK if quick else FULL, device, seed, quick)
    tokenizer = journey.train_tokenizer()
    checkpoint = journey.pretrain(tokenizer)
    journey.predict_masks_and_next_sentences(checkpoint)
    journey.embed(checkpoint)
    journey.sentiment(checkpoint)
    journey.ner(checkpoint)
    journey.qa(checkpoint)
    journey.attention(checkpoint)
    journey.finetuning_curves()

    summary = journey.summary
    summary["timings_s"]["total"] = round(time.perf_counter() - started, 2)
    overview = journey.report.section("Summary")
    overview.table([{"step": k, "seconds": v} for k, v in summary["timings_s"].items()])
    report = journey.report.write(out / "report.html")
    summary["report"] = str(report)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return summary


# ---- the `bertkit demo` command ----

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-output", help="folder for everything the demo writes (default demo-output)")
    parser.add_argument("--quick", action="store_true", help="smaller model and fewer steps: under a minute")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    summary = run_demo(args.out, quick=args.quick, device=args.device, seed=args.seed)
    print(f"\ndone in {summary['timings_s']['total']:.0f} s. The report: {summary['report']}")
    return 0
