"""bertkit's HuggingFace-shaped training surface (Trainer, TrainingArguments, AdamW, the schedules, the MLM
collator) run the way the seeds run it, with `from bertkit import ...` instead of `from transformers import ...`.

What this file proves:
  * seed 000 (Trainer on a CSV through `datasets`) runs as written and returns what the seed printed
    (TrainOutput with global_step 18, the Epoch/Training Loss/Validation Loss table, evaluate()/predict()),
    and transformers' own Trainer on the same data and settings logs the same kinds of entries;
  * seed 004's hand-written loop gets transformers' learning rates from bertkit's scheduler;
  * seed 003's MLM-by-hand loop learns and computes transformers' loss on identical weights;
  * a run resumed from a checkpoint continues exactly as the uninterrupted run (dropout on);
  * bad input fails before the first step with a message that says what to do;
  * length grouping is a permutation per epoch, reproducible, and pads less on real SST-2 lengths;
  * the MLM collator plugs into Trainer and trains on real text.
Real weights are all-MiniLM-L6-v2 (bert-base-uncased vocabulary); the Trainer mechanics use a tiny random BERT.
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import wiki_lines

SST2 = "en-sentiment-sst2/dev.tsv"
WIKI = "text-en-wikipedia/enwiki-wikitasks-text-AA.tar.xz"


@pytest.fixture(scope="module")
def model_name(minilm_dir) -> str:
    return str(minilm_dir)


@pytest.fixture(scope="module")
def sst2_rows(shared_data) -> list[tuple[str, int]]:
    with (shared_data / SST2).open(encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [(sentence.strip(), int(label)) for sentence, label in reader]


@pytest.fixture(scope="module")
def wiki_text(shared_data) -> list[str]:
    return wiki_lines(shared_data / WIKI, 32)


@contextlib.contextmanager
def working_directory(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


# ----------------------------------------------------------------------------------------------------------
# seed 000: Trainer + TrainingArguments on a CSV loaded with `datasets`


def run_seed_000(library, model_name: str, csv_file: Path, hf_oracle: bool):
    """Seed 000's cells In [4]..In [94], line for line. `imdb.csv` is a 100-row SST-2 CSV; the split is seeded
    so both libraries see the same rows. transformers 5 no longer takes `evaluation_strategy`/`logging_dir`,
    so its oracle run spells the first `eval_strategy` and drops the second (and turns off reporting)."""
    datasets = pytest.importorskip("datasets")
    from datasets import load_dataset

    BertForSequenceClassification, BertTokenizerFast = library.BertForSequenceClassification, library.BertTokenizerFast
    Trainer, TrainingArguments = library.Trainer, library.TrainingArguments

    dataset = load_dataset('csv', data_files=str(csv_file), split='train')
    assert isinstance(dataset, datasets.Dataset)
    dataset = dataset.train_test_split(test_size=0.3, seed=0)
    train_set = dataset['train']
    test_set = dataset['test']
    library.set_seed(0)
    model = BertForSequenceClassification.from_pretrained(model_name)
    tokenizer = BertTokenizerFast.from_pretrained(model_name)

    def preprocess(data):
        return tokenizer(data['text'], padding=True, truncation=True)

    train_set = train_set.map(preprocess, batched=True, batch_size=len(train_set))
    test_set = test_set.map(preprocess, batched=True, batch_size=len(test_set))
    train_set.set_format('torch', columns=['input_ids', 'attention_mask', 'label'])
    test_set.set_format('torch', columns=['input_ids', 'attention_mask', 'label'])
    batch_size = 8
    epochs = 2
    warmup_steps = 500
    weight_decay = 0.01
    if hf_oracle:
        spelled = dict(eval_strategy='epoch', report_to='none', use_cpu=True, disable_tqdm=True)
    else:
        spelled = dict(evaluation_strategy='epoch', logging_dir='./logs')
    training_args = TrainingArguments(
        output_dir='./results',
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        logging_strategy='epoch',
        **spelled,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=test_set,
    )
    output = trainer.train()
    return trainer, output, test_set


@pytest.fixture(scope="module")
def imdb_csv(tmp_path_factory, sst2_rows) -> Path:
    """100 SST-2 dev rows as the seed's `imdb.csv` (columns text,label)."""
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(sst2_rows), size=100, replace=False)
    path = tmp_path_factory.mktemp("seed000") / "imdb.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(sst2_rows[i] for i in chosen)
    return path


@pytest.fixture(scope="module")
def seed_000(model_name, imdb_csv, tmp_path_factory):
    """bertkit running seed 000 in a fresh working directory; stdout (the printed table) is kept."""
    import bertkit

    folder = tmp_path_factory.mktemp("seed000_bertkit")
    stdout = io.StringIO()
    with working_directory(folder), contextlib.redirect_stdout(stdout):
        trainer, output, test_set = run_seed_000(bertkit, model_name, imdb_csv, hf_oracle=False)
        evaluation = trainer.evaluate()
        prediction = trainer.predict(test_set)
    return dict(trainer=trainer, output=output, test_set=test_set, evaluation=evaluation, prediction=prediction,
                stdout=stdout.getvalue(), folder=folder)


@pytest.fixture(scope="module")
def seed_000_huggingface(model_name, imdb_csv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seed000_hf")
    with working_directory(folder):
        trainer, output, test_set = run_seed_000(transformers, model_name, imdb_csv, hf_oracle=True)
        evaluation = trainer.evaluate()
    return dict(trainer=trainer, output=output, evaluation=evaluation)


def test_seed_000_train_output_is_the_seeds(seed_000):
    from bertkit import TrainOutput

    output = seed_000["output"]
    assert isinstance(output, TrainOutput)
    global_step, training_loss, metrics = output  # a NamedTuple, as the seed's Out [96] shows
    assert global_step == 18  # 70 rows / batch 8 = 9 steps per epoch, 2 epochs: the seed's "18/18"
    assert isinstance(training_loss, float) and math.isfinite(training_loss)
    assert {"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "epoch"} <= set(metrics)
    assert metrics["epoch"] == 2.0
    assert metrics["train_loss"] == training_loss
    assert metrics["train_runtime"] > 0 and metrics["train_steps_per_second"] > 0


def test_seed_000_prints_the_epoch_table(seed_000):
    lines = [line for line in seed_000["stdout"].splitlines() if line.strip()]
    header = lines.index("Epoch\tTraining Loss\tValidation Loss")
    rows = [line.split("\t") for line in lines[header + 1:header + 3]]
    assert [row[0] for row in rows] == ["1", "2"]
    history = seed_000["trainer"].state.log_history
    train_losses = [e["loss"] for e in history if "loss" in e]
    eval_losses = [e["eval_loss"] for e in history if "eval_loss" in e][:2]  # the two in-training evaluations
    for row, loss, eval_loss in zip(rows, train_losses, eval_losses):
        assert float(row[1]) == pytest.approx(loss, abs=1e-6)
        assert float(row[2]) == pytest.approx(eval_loss, abs=1e-6)


def test_seed_000_evaluate_and_predict(seed_000):
    evaluation = seed_000["evaluation"]
    # the seed's Out [55]
    assert set(evaluation) == {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}
    assert evaluation["epoch"] == 2.0 and math.isfinite(evaluation["eval_loss"])
    predictions, label_ids, metrics = seed_000["prediction"]
    assert predictions.shape == (30, 2)
    assert label_ids.tolist() == [int(label) for label in seed_000["test_set"]["label"]]  # back in the dataset's order
    assert metrics["test_loss"] == pytest.approx(evaluation["eval_loss"], abs=1e-5)  # same model, same rows


def test_seed_000_logging_dir_gets_metrics_jsonl(seed_000):
    from bertkit.train.metrics_log import read_metrics

    rows = read_metrics(seed_000["folder"] / "logs" / "metrics.jsonl")
    splits = [row["split"] for row in rows]
    assert splits.count("train") == 2 and splits.count("train_end") == 1
    assert splits.count("eval") == 3  # two during training, one from trainer.evaluate()
    assert [row["step"] for row in rows if row["split"] == "train"] == [9, 18]
    assert not (seed_000["folder"] / "results" / "metrics.jsonl").exists()  # logging_dir, not output_dir


def test_seed_000_logs_what_transformers_trainer_logs(seed_000, seed_000_huggingface):
    ours, theirs = seed_000["trainer"], seed_000_huggingface["trainer"]
    assert seed_000["output"].global_step == seed_000_huggingface["output"].global_step == 18

    def kinds(history):
        return {kind: [e for e in history if key in e]
                for kind, key in (("train", "loss"), ("eval", "eval_loss"), ("end", "train_runtime"))}

    our_kinds, their_kinds = kinds(ours.state.log_history), kinds(theirs.state.log_history)
    assert {k: len(v) for k, v in our_kinds.items()} == {k: len(v) for k, v in their_kinds.items()} == {
        "train": 2, "eval": 3, "end": 1}  # eval: one per epoch, then the seed's trainer.evaluate()
    assert len(ours.state.log_history) == len(theirs.state.log_history) == 6
    for kind in ("train", "eval"):
        for mine, hf in zip(our_kinds[kind], their_kinds[kind]):
            assert set(mine) == set(hf), kind
            assert (mine["step"], mine["epoch"]) == (hf["step"], hf["epoch"])
    # transformers adds total_flos (a FLOP estimate bertkit does not make); every other key is shared
    assert set(seed_000["output"].metrics) == set(seed_000_huggingface["output"].metrics) - {"total_flos"}
    assert set(seed_000["evaluation"]) == set(seed_000_huggingface["evaluation"])
    # The classification head is new and random in both, drawn by different init code from different RNG
    # streams, so the losses cannot be bit-equal; with warmup_steps=500 the learning rate stays below 2e-6 for
    # all 18 steps, so both stay where a near-zero random head starts: near ln 2 for two balanced classes.
    for output in (seed_000["output"], seed_000_huggingface["output"]):
        assert output.training_loss == pytest.approx(math.log(2), abs=0.02)
    # the logged learning rate is the one the step just taken used (transformers 5 reads it before scheduler.step())
    for lr_ours, lr_hf in zip([e["learning_rate"] for e in our_kinds["train"]],
                              [e["learning_rate"] for e in their_kinds["train"]]):
        assert lr_ours == pytest.approx(lr_hf, rel=1e-9)


# ----------------------------------------------------------------------------------------------------------
# seed 004: a hand-written loop with get_linear_schedule_with_warmup


def test_seed_004_loop_prints_losses_and_follows_transformers_schedule(model_name, capsys):
    from torch.optim import AdamW
    from torch.utils.data import DataLoader, Dataset

    from bertkit import BertForSequenceClassification, BertTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(0)
    texts = ["This movie was absolutely fantastic!", "I hated every minute of it.",
             "An incredible performance by the lead actor.", "Terrible writing, terrible acting.",
             "One of the best films I've seen this year.", "Complete waste of time and money.",
             "Beautifully crafted and deeply moving.", "Boring and predictable from start to finish."]
    labels = [1, 0, 1, 0, 1, 0, 1, 0]  # 1=positive, 0=negative
    tokenizer = BertTokenizer.from_pretrained(model_name)

    class SentimentDataset(Dataset):
        def __init__(self, texts, labels, tokenizer, max_len=64):
            self.encodings = tokenizer(texts, truncation=True, padding=True, max_length=max_len, return_tensors='pt')
            self.labels = torch.tensor(labels)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, idx):
            return {'input_ids': self.encodings['input_ids'][idx],
                    'attention_mask': self.encodings['attention_mask'][idx],
                    'labels': self.labels[idx]}

    dataset = SentimentDataset(texts, labels, tokenizer)
    loader = DataLoader(dataset, batch_size=4, shuffle=True)
    model = BertForSequenceClassification.from_pretrained(model_name, num_labels=2)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = model.to(device)
    optimizer = AdamW(model.parameters(), lr=2e-5)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0, num_training_steps=len(loader) * 3)
    learning_rates = [scheduler.get_last_lr()[0]]
    print('Fine-tuning BERT for sentiment classification...')
    for epoch in range(3):
        model.train()
        total_loss = 0
        for batch in loader:
            optimizer.zero_grad()
            input_ids = batch['input_ids'].to(device)
            attention_mask = batch['attention_mask'].to(device)
            labels = batch['labels'].to(device)
            outputs = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            loss = outputs.loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            learning_rates.append(scheduler.get_last_lr()[0])
            total_loss += loss.item()
        print(f'Epoch {epoch + 1} : loss= {total_loss / len(loader):.4f}')
    model.eval()
    new_texts = ["I absolutely loved this film!", "This was the worst movie I have ever seen."]
    new_encoding = tokenizer(new_texts, truncation=True, padding=True, max_length=64, return_tensors='pt').to(device)
    with torch.no_grad():
        outputs = model(**new_encoding)
    preds = torch.argmax(outputs.logits, dim=1)
    for text, pred in zip(new_texts, preds):
        sentiment = "Positive" if pred == 1 else "Negative"
        print(f'"{text[:50]}..." -> {sentiment}')

    printed = capsys.readouterr().out.splitlines()
    epoch_lines = [line for line in printed if line.startswith("Epoch")]
    assert [re.fullmatch(r"Epoch (\d) : loss= (\d+\.\d{4})", line).group(1) for line in epoch_lines] == ["1", "2", "3"]
    assert all(math.isfinite(float(line.split("= ")[1])) for line in epoch_lines)
    assert len([line for line in printed if re.search(r'\.\.\." -> (Positive|Negative)$', line)]) == 2

    # transformers' schedule on an optimizer with the same settings, stepped as often
    reference_optimizer = AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
    reference = transformers.get_linear_schedule_with_warmup(reference_optimizer, num_warmup_steps=0,
                                                             num_training_steps=len(loader) * 3)
    expected = [reference.get_last_lr()[0]]
    for _ in range(len(loader) * 3):
        reference_optimizer.step()
        reference.step()
        expected.append(reference.get_last_lr()[0])
    assert len(learning_rates) == 7 and learning_rates[-1] == 0.0
    assert learning_rates == pytest.approx(expected, rel=1e-12, abs=1e-18)


# ----------------------------------------------------------------------------------------------------------
# seed 003: masked language modelling by hand


def test_seed_003_mlm_by_hand_learns_and_matches_transformers_loss(model_name, wiki_text, tmp_path):
    """Seed 003's MLM cells on 32 real Wikipedia lines. max_length is 64, not the seed's 512, to stay fast on
    a CPU (the seed pads every line to max_length; 512 would be 8x the compute for the same test)."""
    from bertkit import AdamW, BertForMaskedLM, BertTokenizer

    torch.manual_seed(0)  # MiniLM has no MLM head: its transform is drawn here (the decoder is tied)
    tokenizer = BertTokenizer.from_pretrained(model_name)
    model = BertForMaskedLM.from_pretrained(model_name)
    # transformers gets the very same weights: bertkit saves, transformers loads that folder
    model.save_pretrained(tmp_path)
    reference, info = transformers.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]

    text = wiki_text
    inputs = tokenizer(text, return_tensors="pt", max_length=64, truncation=True, padding="max_length")
    inputs["labels"] = inputs.input_ids.detach().clone()
    rand = torch.rand(inputs.input_ids.shape)
    mask_arr = (rand < 0.15) * (inputs.input_ids != 101) * (inputs.input_ids != 102) * (inputs.input_ids != 0)
    selection = []
    for i in range(mask_arr.shape[0]):
        selection.append(torch.flatten(mask_arr[i].nonzero()).tolist())
    for i in range(mask_arr.shape[0]):
        inputs.input_ids[i, selection[i]] = 103
    assert (inputs.input_ids == 103).sum() == mask_arr.sum() > 0

    class MeditationsDataset(torch.utils.data.Dataset):
        def __init__(self, encodings):
            self.encodings = encodings

        def __getitem__(self, idx):
            return {key: val[idx].clone() for key, val in self.encodings.items()}  # the seed: torch.tensor(val[idx])

        def __len__(self):
            return len(self.encodings.input_ids)

    dataset = MeditationsDataset(inputs)
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True)
    first = next(iter(torch.utils.data.DataLoader(dataset, batch_size=16)))
    device = torch.device('cpu')

    def eval_loss(m):
        m.eval()
        with torch.no_grad():
            return m(first['input_ids'], attention_mask=first['attention_mask'], labels=first['labels']).loss.item()

    before = eval_loss(model)
    assert before == pytest.approx(eval_loss(reference), abs=1e-4)

    model.to(device)
    model.train()
    optimizer = AdamW(model.parameters(), lr=1e-5)
    from tqdm import tqdm

    epochs = 2
    epoch_losses = []
    for epoch in range(epochs):
        loop = tqdm(loader, leave=True)
        losses = []
        for batch in loop:
            optimizer.zero_grad()
            input_ids = batch['input_ids'].to(device)
            attention_mask = batch['attention_mask'].to(device)
            labels = batch['labels'].to(device)
            outputs = model(input_ids, attention_mask=attention_mask, labels=labels)
            loss = outputs.loss
            loss.backward()
            optimizer.step()
            loop.set_description(f'Epoch {epoch}')
            loop.set_postfix(loss=loss.item())
            losses.append(loss.item())
        epoch_losses.append(sum(losses) / len(losses))
    assert all(math.isfinite(x) for x in epoch_losses)
    assert epoch_losses[1] < epoch_losses[0]
    assert eval_loss(model) < before


# ----------------------------------------------------------------------------------------------------------
# Trainer mechanics on a tiny random BERT


def tiny_classifier(seed: int = 0, num_labels: int = 2):
    from bertkit import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    return BertForSequenceClassification(config)


def token_rows(n: int = 24, seed: int = 0, num_labels: int = 2) -> list[dict]:
    """Rows of varied lengths whose label is carried by their first token."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % num_labels
        body = rng.integers(10, 64, size=int(rng.integers(3, 20))).tolist()
        rows.append({"input_ids": [2, 5 + label] + body + [3], "label": label})
    return rows


def checkpoints(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("checkpoint-*")) if folder.exists() else []


def test_resume_from_checkpoint_continues_exactly(tmp_path):
    from bertkit import Trainer, TrainerCallback, TrainingArguments

    def arguments(folder):
        return TrainingArguments(output_dir=str(folder), max_steps=8, per_device_train_batch_size=4,
                                 learning_rate=1e-3, save_strategy="steps", save_steps=3, logging_steps=1,
                                 disable_tqdm=True, use_cpu=True, seed=7)

    rows = token_rows()  # 24 rows, 6 steps per epoch: step 8 is in the second epoch
    straight = Trainer(model=tiny_classifier(), args=arguments(tmp_path / "straight"), train_dataset=rows)
    straight.train()
    straight_losses = {e["step"]: e["loss"] for e in straight.state.log_history if "loss" in e}
    assert sorted(straight_losses) == list(range(1, 9))

    class CrashAfterStep4(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 4

    interrupted = Trainer(model=tiny_classifier(), args=arguments(tmp_path / "resumed"), train_dataset=rows,
                          callbacks=[CrashAfterStep4()])
    interrupted.train()
    assert interrupted.state.global_step == 4
    assert checkpoints(tmp_path / "resumed") == ["checkpoint-3"]  # step 4's work is lost, as in a crash

    # a fresh process: a differently initialised model, a new Trainer; everything comes from the checkpoint
    resumed = Trainer(model=tiny_classifier(seed=99), args=arguments(tmp_path / "resumed"), train_dataset=rows)
    output = resumed.train(resume_from_checkpoint=True)
    assert output.global_step == 8
    # the summary's mean covers the whole run, the steps before the resume included
    assert output.training_loss == pytest.approx(straight.state.train_loss_sum / 8, rel=1e-6)
    assert output.training_loss == pytest.approx(sum(straight_losses.values()) / 8, abs=1e-4)
    resumed_losses = {e["step"]: e["loss"] for e in resumed.state.log_history if "loss" in e}
    assert {s: resumed_losses[s] for s in range(4, 9)} == {s: straight_losses[s] for s in range(4, 9)}
    assert [straight_losses[s] for s in range(4, 9)] != [straight_losses[s] for s in range(1, 6)]  # they move
    ours, reference = resumed.model.state_dict(), straight.model.state_dict()
    assert ours.keys() == reference.keys()
    for name in reference:
        assert torch.equal(ours[name], reference[name]), name
    assert not all(torch.equal(ours[n], tiny_classifier(seed=99).state_dict()[n]) for n in ours)


def fails_before_training(make, tmp_path, error, *pieces):
    """`make(output_dir)` raises `error` whose message has every piece, and no step was saved."""
    with pytest.raises(error) as caught:
        make(tmp_path / "run")
    for piece in pieces:
        assert piece in str(caught.value), (piece, str(caught.value))
    assert checkpoints(tmp_path / "run") == []


def tiny_args(folder, **extra):
    from bertkit import TrainingArguments

    settings = dict(max_steps=2, per_device_train_batch_size=4, save_steps=1, disable_tqdm=True, use_cpu=True)
    return TrainingArguments(output_dir=str(folder), **{**settings, **extra})


def test_training_data_without_labels_is_refused(tmp_path):
    from bertkit import Trainer

    rows = [{"input_ids": r["input_ids"]} for r in token_rows(8)]
    fails_before_training(lambda out: Trainer(model=tiny_classifier(), args=tiny_args(out), train_dataset=rows).train(),
                          tmp_path, ValueError, "no labels", "'label' or 'labels' column")


@pytest.mark.parametrize("dataset", [
    [{"text": "a fine film", "label": 1}, {"text": "a dull film", "label": 0}],
    ["a fine film", "a dull film"],
], ids=["dicts of text", "bare strings"])
def test_untokenized_text_is_refused_with_a_hint_to_map_the_tokenizer(tmp_path, dataset):
    from bertkit import Trainer

    fails_before_training(lambda out: Trainer(model=tiny_classifier(), args=tiny_args(out), train_dataset=dataset).train(),
                          tmp_path, ValueError, "map the tokenizer over it first")


def test_labels_beyond_num_labels_are_refused(tmp_path):
    from bertkit import Trainer

    rows = token_rows(9, num_labels=3)  # labels 0, 1, 2
    fails_before_training(lambda out: Trainer(model=tiny_classifier(num_labels=2), args=tiny_args(out),
                                              train_dataset=rows).train(),
                          tmp_path, ValueError, "labels go up to 2", "num_labels=2", "num_labels=3")


def test_evaluation_strategy_without_eval_dataset_is_refused(tmp_path):
    from bertkit import Trainer

    fails_before_training(lambda out: Trainer(model=tiny_classifier(), args=tiny_args(out, eval_strategy="epoch"),
                                              train_dataset=token_rows(8)).train(),
                          tmp_path, ValueError, "eval_strategy='epoch' needs an eval_dataset")


def test_unknown_training_argument_names_it_with_a_suggestion():
    from bertkit import TrainingArguments

    with pytest.raises(TypeError, match=r"num_train_epoch \(did you mean num_train_epochs\?\)"):
        TrainingArguments(output_dir="unused", num_train_epoch=2)


def test_both_spellings_of_eval_strategy_are_refused():
    from bertkit import TrainingArguments

    with pytest.raises(ValueError, match="eval_strategy or its old name evaluation_strategy, not both"):
        TrainingArguments(output_dir="unused", evaluation_strategy="epoch", eval_strategy="epoch")


def test_columns_the_model_does_not_take_are_dropped_with_a_warning(tmp_path, caplog):
    from bertkit import Trainer

    rows = [{**r, "text": "words kept beside the ids", "idx": i} for i, r in enumerate(token_rows(8))]
    with caplog.at_level(logging.WARNING, logger="bertkit"):
        trainer = Trainer(model=tiny_classifier(), args=tiny_args(tmp_path), train_dataset=rows)
    warnings = [r.getMessage() for r in caplog.records if r.name == "bertkit"]
    assert any("were ignored: idx, text" in message for message in warnings), warnings
    assert all(set(row) == {"input_ids", "labels"} for row in trainer.train_rows)
    assert trainer.train().global_step == 2  # and training runs


def test_report_to_wandb_is_accepted_and_said_to_have_no_effect(tmp_path, caplog):
    from bertkit import Trainer

    with caplog.at_level(logging.WARNING, logger="bertkit"):
        args = tiny_args(tmp_path, report_to="wandb")
        Trainer(model=tiny_classifier(), args=args, train_dataset=token_rows(8))
    assert any("report_to='wandb' has no effect" in r.getMessage() for r in caplog.records), caplog.text


# ----------------------------------------------------------------------------------------------------------
# group_by_length


def test_batch_order_is_a_reproducible_permutation_that_pads_less_when_grouped(model_name, sst2_rows):
    from bertkit import BertTokenizer
    from bertkit.train.rows import batch_order

    tokenizer = BertTokenizer.from_pretrained(model_name)
    lengths = [len(ids) for ids in tokenizer([s for s, _ in sst2_rows])["input_ids"]]
    assert len(lengths) == 872 and len(set(lengths)) > 20

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    for grouped in (True, False):
        epochs = [batch_order(lengths, 8, seed, grouped) for seed in (42, 43)]
        for batches in epochs:
            assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each row once
            assert all(len(b) == 8 for b in batches[:-1])
        assert epochs[0] == batch_order(lengths, 8, 42, grouped)  # same seed, same order
        assert epochs[0] != epochs[1]  # the next epoch is shuffled anew
    grouped = np.mean([padding(batch_order(lengths, 8, seed, True)) for seed in range(5)])
    shuffled = np.mean([padding(batch_order(lengths, 8, seed, False)) for seed in range(5)])
    assert grouped < 0.25 * shuffled, (grouped, shuffled)


# ----------------------------------------------------------------------------------------------------------
# DataCollatorForLanguageModeling + Trainer


def test_mlm_collator_trains_a_masked_lm_through_trainer(model_name, wiki_text, tmp_path):
    from bertkit import BertConfig, BertForMaskedLM, BertTokenizer, DataCollatorForLanguageModeling, Trainer

    tokenizer = BertTokenizer.from_pretrained(model_name)
    encodings = tokenizer(wiki_text, truncation=True, max_length=64)
    rows = [{key: encodings[key][i] for key in encodings} for i in range(len(wiki_text))]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    model = BertForMaskedLM(config)
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=True, mlm_probability=0.15)
    trainer = Trainer(model=model, args=tiny_args(tmp_path, max_steps=24, save_strategy="no", logging_steps=1,
                                                  learning_rate=5e-3),
                      data_collator=collator, train_dataset=rows)
    output = trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 24 and all(math.isfinite(x) for x in losses)
    assert losses[0] == pytest.approx(math.log(tokenizer.vocab_size), rel=0.1)  # a random model starts near ln V
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.5
    assert math.isfinite(output.training_loss)
