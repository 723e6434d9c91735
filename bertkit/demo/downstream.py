"""Steps 6-8 of the demo, fine-tuning (sentiment, NER, QA), and what they taught the model: each task's learning
curve. Mixed into `journey.Journey`, whose attributes (out, size, encoder, source, summary, report, ...) they use."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from bertkit.demo.lessons import CURVE_METRICS, curves_png, learning_curve, unknown_word_share
from bertkit.demo.plan import (
    EVALUATIONS,
    KOREAN_NER_EXAMPLE,
    KOREAN_SENTIMENT_EXAMPLES,
    NER_EXAMPLE,
    PRETRAINED_LR,
    REAL_FULL,
    REAL_QUICK,
    SENTIMENT_EXAMPLES,
    SHIPPED_FULL,
    SHIPPED_QUICK,
    TaskSize,
)
from bertkit.demo.printing import clip, say
from bertkit.demo.slices import BUNDLED, SHIPPED_SLICES, SLICES

LANGUAGE = {"shared": {"sentiment": "English", "ner": "English", "qa": "English"},
            "package": {"sentiment": "Korean", "ner": "Korean", "qa": "English"},
            "bundled": {"sentiment": "English", "ner": "English", "qa": "English"}}


def numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics (per-class reports and the like stay out of the summary tables)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def curve_text(points: list[tuple[int, float]], scale: float = 1.0) -> str:
    return ", ".join(f"{n:,}: {v * scale:.{1 if scale > 1 else 2}f}" for n, v in points)


class DownstreamSteps:
    """Fine-tuning the encoder on each task, with a learning curve per task."""

    out: Path
    quick: bool
    seed: int
    device: str
    source: str  # "shared" (../shared/data), "package" (the shipped slices) or "bundled" (the tiny samples)
    summary: dict[str, Any]
    curves: dict[str, dict[str, Any]]
    finetune_logs: dict[str, Path]

    def language(self, task: str) -> str:
        return LANGUAGE[self.source][task]

    def task_data(self, task: str) -> tuple[Path, Path, str, TaskSize | None]:
        """(train file, eval file, where they come from, sizes): a slice of the real data (../shared/data when it is
        beside the checkout, else the slices shipped in the package) for a pretrained encoder; the bundled sample
        for the from-scratch model (sizes None: its own settings). Seeds every generator first, so that the task's
        new head and its result do not depend on the steps before it."""
        from bertkit.train.arguments import set_seed

        set_seed(self.seed)
        if self.source in ("shared", "package"):
            sizes = {"shared": (REAL_FULL, REAL_QUICK), "package": (SHIPPED_FULL, SHIPPED_QUICK)}[self.source]
            size = sizes[1 if self.quick else 0][task]
            folder = self.out / "data"
            folder.mkdir(parents=True, exist_ok=True)
            if self.source == "shared":
                train, dev, source = SLICES[task](self.data, folder, size, self.seed)
            else:
                train, dev, source = SHIPPED_SLICES[task](folder, size, self.seed)
        else:
            (train, dev, source), size = BUNDLED[task], None
        self.summary["data"][task] = {"train": str(train), "eval": str(dev), "source": source,
                                      "language": self.language(task)}
        return train, dev, source, size

    def task_settings(self, size: TaskSize | None, epochs: int, batch_size: int, length: int) -> TaskSize:
        """A pretrained encoder on real data: `size`; otherwise all of the bundled sample for `epochs` epochs."""
        if size is not None:
            return size
        lr = PRETRAINED_LR if self.encoder.pretrained else self.size.finetune_lr
        return TaskSize(train=0, eval=0, epochs=epochs, lr=lr, max_length=length, batch_size=batch_size)

    def evaluation_every(self, size: TaskSize | None, rows: int, settings: TaskSize) -> int | None:
        """Steps between the evaluations that draw the learning curve (None: only the final evaluation)."""
        if size is None:
            return None
        steps = max(1, math.ceil(rows / settings.batch_size) * settings.epochs)
        return max(1, math.ceil(steps / EVALUATIONS))

    def finetune_config(self, task: str, settings: TaskSize, every: int | None) -> Any:
        from bertkit.train.recipes import recipe_arguments

        curve = {"eval_steps": every, "load_best_model_at_end": False} if every else {}
        return recipe_arguments(output_dir=str(self.out / task), num_train_epochs=settings.epochs,
                                per_device_train_batch_size=settings.batch_size, learning_rate=settings.lr,
                                warmup_ratio=0.1, logging_steps=2, device=self.device, seed=self.seed, **curve)

    def record_curve(self, task: str, settings: TaskSize, final: float, chance: float | None, steps: int) -> None:
        """The task's learning curve from its metrics.jsonl (examples seen = steps x batch size; QA counts question
        windows), ending at the final score."""
        points = learning_curve(self.out / task / "metrics.jsonl", task, settings.batch_size)
        _, _, scale = CURVE_METRICS[task]
        seen = steps * settings.batch_size
        points = [(n, v) for n, v in points if n < seen] + [(seen, final / scale)]
        self.curves[task] = {"points": points, "chance": chance, "language": self.language(task)}
        self.summary.setdefault("learning_curves", {})[task] = points

    # 6 ---------------------------------------------------------------------------------------
    def sentiment(self) -> None:
        """Seed 000's way: `Trainer(model, TrainingArguments(...), train_dataset, eval_dataset, compute_metrics)`."""
        from bertkit import BertForSequenceClassification, BertTokenizerFast, Trainer, TrainingArguments
        from bertkit.pipelines import pipeline
        from bertkit.tasks.classification import read_classification_file
        from bertkit.tasks.metrics import classification_metrics

        encoder, folder = self.encoder, self.out / "sentiment"
        train_file, dev_file, source, size = self.task_data("sentiment")
        settings = self.task_settings(size, self.size.sentiment_epochs, 8, 128)
        korean = self.language("sentiment") == "Korean"
        examples = KOREAN_SENTIMENT_EXAMPLES if korean else SENTIMENT_EXAMPLES
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
        train_examples, dev_examples = read_classification_file(train_file), read_classification_file(dev_file)

        def rows(examples: list) -> list[dict[str, Any]]:  # a list of dicts is a dataset for the Trainer
            return [{**tokenizer(e.text, truncation=True, max_length=settings.max_length), "label": int(e.label)}
                    for e in examples]

        def compute_metrics(prediction: Any) -> dict[str, float]:
            metrics = classification_metrics(prediction.predictions.argmax(-1), prediction.label_ids)
            return {k: v for k, v in metrics.items() if isinstance(v, float)}

        train_rows, dev_rows = rows(train_examples), rows(dev_examples)
        unknown = unknown_word_share(tokenizer, [e.text for e in train_examples[:500]])
        self.summary["data"]["sentiment"]["unknown_words"] = unknown
        say(f"{len(train_rows):,} training and {len(dev_rows):,} held-out {self.language('sentiment')} movie reviews"
            + (f"; {unknown:.0%} of their words are [UNK] to this encoder's vocabulary" if unknown >= 0.05 else ""))
        steps = max(1, round(len(train_rows) / settings.batch_size * settings.epochs))
        every = self.evaluation_every(size, len(train_rows), settings)
        args = TrainingArguments(output_dir=str(folder / "checkpoints"), logging_dir=str(folder),
                                 num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch_size,
                                 per_device_eval_batch_size=64, learning_rate=settings.lr, warmup_ratio=0.1,
                                 weight_decay=0.01, logging_steps=max(1, steps // 25), save_strategy="no",
                                 eval_strategy="steps" if every else "no", eval_steps=every,
                                 seed=self.seed, device=self.device)
        trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=dev_rows,
                          processing_class=tokenizer, compute_metrics=compute_metrics)
        trainer.train()
        last = next((e for e in reversed(trainer.state.log_history) if "eval_accuracy" in e), None)
        evaluation = last if last and last["step"] == trainer.state.global_step else trainer.evaluate()
        trainer.save_model(folder)
        self.timed("sentiment", started)
        metrics = {k.removeprefix("eval_"): v for k, v in evaluation.items()
                   if k.removeprefix("eval_") in ("accuracy", "macro_f1", "loss")}
        majority = max(sum(r["label"] for r in dev_rows), sum(1 - r["label"] for r in dev_rows)) / len(dev_rows)
        self.record_curve("sentiment", settings, metrics["accuracy"], majority, trainer.state.global_step)
        say(f"accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} on {len(dev_rows)} held-out "
            f"reviews (chance {majority:.2f}); by examples seen: {curve_text(self.curves['sentiment']['points'])}")
        predictions = pipeline("sentiment-analysis", model=folder)(examples)
        for text, prediction in zip(examples, predictions):
            say(f"{'positive' if prediction['label'] == '1' else 'negative'} ({prediction['score']:.2f})  {text}")
        section.text(f"Trained on {source}: {len(train_rows)} training and {len(dev_rows)} evaluation "
                     f"{self.language('sentiment')} sentences (movie reviews; 1 = positive, 0 = negative), "
                     f"{settings.epochs:g} epoch(s) at learning rate {settings.lr:g}, through bertkit's Trainer with "
                     "HuggingFace's API (the same loop as the command):")
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
        section.table([{"text": t, "label": p["label"], "score": p["score"]} for t, p in zip(examples, predictions)])
        self.summary["sentiment"] = metrics
        self.summary["sentiment_examples"] = [{"text": t, "label": p["label"], "score": p["score"]}
                                              for t, p in zip(examples, predictions)]
        self.finetune_logs["sentiment"] = folder / "metrics.jsonl"

    # 7 ---------------------------------------------------------------------------------------
    def ner(self) -> None:
        from bertkit.pipelines import pipeline
        from bertkit.tasks.ner import read_ner_file
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
        train_rows = len(read_ner_file(train))
        every = self.evaluation_every(size, train_rows, settings)
        result = finetune_ner(encoder.folder, train, dev, self.finetune_config("ner", settings, every),
                              max_length=settings.max_length)
        self.timed("ner", started)
        metrics = numbers(result["eval"])
        self.record_curve("ner", settings, metrics["f1"], 0.0, result["steps"])
        say(f"entity F1 {metrics['f1']:.3f} (precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}) on "
            f"{result['eval_examples']} held-out sentences; by examples seen: {curve_text(self.curves['ner']['points'])}")
        korean = self.language("ner") == "Korean"
        example = KOREAN_NER_EXAMPLE if korean else NER_EXAMPLE
        # trained one character per word (KLUE's tagging): the Korean sentence goes in the same way
        model_input = " ".join(ch for ch in example if not ch.isspace()) if korean else example
        entities = pipeline("ner", model=folder, aggregation_strategy="first")(model_input)  # word-level, as trained
        for entity in entities:
            entity["word"] = entity["word"].replace(" ", "") if korean else entity["word"]
        found = ", ".join(f"{e['entity_group']} {e['word']!r} ({e['score']:.2f})" for e in entities) or "none"
        say(clip(f"entities in {example!r}: {found}", 160))
        section.text(f"Trained on {source}; {settings.epochs:g} epoch(s) at learning rate {settings.lr:g}. "
                     f"Entity-level precision / recall / F1 on the {result['eval_examples']} held-out sentences.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items() if not isinstance(v, dict)])
        section.text(f"Entities in a new sentence: {example}" + (
            " (given to the model one character per word, as it was trained)" if korean else ""))
        section.table([{k: e[k] for k in ("entity_group", "word", "score", "start", "end")} for e in entities])
        self.summary["ner"] = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
        self.summary["ner_entities"] = [{"entity_group": e["entity_group"], "word": e["word"], "score": e["score"]}
                                        for e in entities]
        self.finetune_logs["ner"] = folder / "metrics.jsonl"

    # 8 ---------------------------------------------------------------------------------------
    def qa(self) -> None:
        from bertkit.pipelines import pipeline
        from bertkit.tasks.qa import read_squad
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
        windows = 0
        if size is not None:  # the learning curve's evaluations are spaced by steps, which count question windows
            from bertkit.tasks.qa import prepare_features
            from bertkit.tokenizer import BertTokenizer

            windows = len(prepare_features(read_squad(train), BertTokenizer.from_pretrained(encoder.folder), length,
                                           length // 2, 64))
        every = self.evaluation_every(size, windows, settings)
        result = finetune_qa(encoder.folder, train, dev, self.finetune_config("qa", settings, every),
                             max_seq_length=length, doc_stride=length // 2)
        self.timed("qa", started)
        metrics = numbers(result["eval"])
        self.record_curve("qa", settings, metrics["f1"], None, result["steps"])
        say(f"F1 {metrics['f1']:.1f}, exact match {metrics['exact_match']:.1f} (percent) on {result['eval_examples']} "
            f"held-out questions; by examples seen: {curve_text(self.curves['qa']['points'], 100)}")
        answerer = pipeline("question-answering", model=folder)
        answers = []
        for article in json.loads(Path(dev).read_text(encoding="utf-8"))["data"][:3]:
            paragraph = article["paragraphs"][0]
            question = paragraph["qas"][0]
            answer = answerer(question=question["question"], context=paragraph["context"])
            answers.append({"question": question["question"], "answer": answer["answer"], "score": answer["score"],
                            "expected": question["answers"][0]["text"]})
            say(clip(f"Q: {question['question']} -> {answer['answer']!r} (expected "
                     f"{question['answers'][0]['text']!r})", 140))
        section.text(f"Trained on {source}; {settings.epochs:g} epoch(s) at learning rate {settings.lr:g}. "
                     f"SQuAD exact match and F1 (percent) on the {result['eval_examples']} held-out questions.")
        section.table([{"metric": k, "value": v} for k, v in metrics.items()])
        section.text("Held-out questions (the first question of the first held-out articles, not picked by score):")
        section.table(answers)
        self.summary["qa"] = metrics
        self.summary["qa_answers"] = answers
        self.finetune_logs["qa"] = folder / "metrics.jsonl"

    # what fine-tuning taught ---------------------------------------------------------------------
    def learning_curves(self) -> None:
        """The report's answer to "what did fine-tuning teach the model?": each task's score by examples seen."""
        section = self.report.section("What fine-tuning taught the model: learning curves")
        png = curves_png(self.curves)
        if png is not None:
            section.image(png, alt="learning curves: held-out score by training examples seen")
        else:
            section.text("(The plot needs matplotlib: pip install 'bertkit[plot]'.)", muted=True)
        rows = []
        for task, curve in self.curves.items():
            metric, _, scale = CURVE_METRICS[task]
            rows.append({"task": task, "language": curve["language"], "score": metric,
                         "by training examples seen": curve_text(curve["points"], scale),
                         "chance": "" if curve["chance"] is None else f"{curve['chance'] * scale:.2f}"})
        section.table(rows)
        section.text("Each point is the held-out score after that many training examples (evaluated while training; "
                     "the last point is the final model). A curve still rising would gain from more data or epochs; "
                     "a flat one is at what this encoder can learn from this data.")
        if self.source == "package" and self.encoder.pretrained:
            unknown = self.summary["data"]["sentiment"].get("unknown_words", 0.0)
            section.text(
                f"Why the Korean tasks stay low: {self.encoder.name.split(' (')[0]} was pretrained on English. Its "
                "uncased tokenizer spells Korean out letter by letter (jamo), some of those letters are not in its "
                f"vocabulary, and a word with one unknown letter is lost whole: {unknown:.0%} of the words of these "
                "reviews become [UNK]. It starts knowing nothing of Korean, and a few thousand examples teach it little: the "
                "curves above stay near chance where an English task (QA here; SST-2 and CoNLL-2003 when "
                "../shared/data is beside the checkout) climbs. A Korean or multilingual BERT (--model FOLDER) is "
                "the fix; the data shipped in the package is Korean because the English sentiment and NER sets at "
                "hand may not be redistributed (bertkit/samples/PROVENANCE.md).")
