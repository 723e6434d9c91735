"""The fine-tuning loop and the finetune / evaluate / predict commands, end to end on a tiny random BERT
(a vocabulary of the samples' words, 1 layer of width 64) so that the whole file runs in seconds on a CPU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bertkit.cli import main
from bertkit.data.collators import PaddingCollator
from bertkit.train.metrics_log import read_metrics
from bertkit.train.recipes import (
    RecipeOptions,
    count_trainable,
    finetune,
    finetune_classifier,
    freeze_encoder,
    recipe_arguments,
)


def tiny_vocabulary() -> list[str]:
    """Special tokens, every single character (alone and as a ## piece) and the whole words of the bundled
    samples and of these tests: small enough that a training step costs milliseconds, complete enough
    that nothing in the samples becomes [UNK]."""
    import re

    samples = Path(__file__).resolve().parents[1] / "bertkit" / "samples" / "tasks"
    text = " ".join(p.read_text(encoding="utf-8") for p in samples.iterdir() if p.suffix in (".tsv", ".conll", ".json"))
    text += " the movie this film our trip food was awful wonderful good bad fine poor sports music politics art"
    text += " none and rated stars tim cook visited paris nothing here"
    words = sorted(set(re.findall(r"[a-z]+", text.lower())))
    characters = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + characters + ["##" + c for c in characters] + [
        w for w in words if len(w) > 1]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from bertkit.model import BertConfig, BertModel

    vocabulary = tiny_vocabulary()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocabulary), hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertModel(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}))
    return folder


@pytest.fixture(scope="module")
def polarity_file(tmp_path_factory):
    """A task a tiny model learns in a few steps: the label is carried by one word."""
    fillers = ["the movie", "this film", "our trip", "the food"]
    rows = [f"{fillers[i % 4]} was {['awful', 'wonderful'][(i // 4) % 2]}\t{['neg', 'pos'][(i // 4) % 2]}"
            for i in range(40)]
    path = tmp_path_factory.mktemp("data") / "polarity.tsv"
    path.write_text("review\tsentiment\n" + "\n".join(rows) + "\n")
    return path


FAST = dict(per_device_train_batch_size=8, learning_rate=5e-3, logging_steps=5, device="cpu", seed=0)


def test_classifier_learns_saves_and_loads_in_huggingface(tiny_bert, polarity_file, tmp_path):
    config = recipe_arguments(output_dir=str(tmp_path / "run"), num_train_epochs=6, **FAST)
    result = finetune_classifier(tiny_bert, polarity_file, args=config, text_column="review", label_column="sentiment")
    assert (result["train_examples"], result["eval_examples"]) == (28, 12)  # the seed's 70/30 split
    assert result["eval"]["accuracy"] >= 0.9 and result["metric_for_best"] == "accuracy"
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in rows if r["split"] == "eval"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert any(r["split"] == "train" and r["loss"] > 0 for r in rows)

    # the saved folder is a HuggingFace checkpoint: same labels, same logits
    from transformers import AutoModelForSequenceClassification, BertTokenizerFast

    import bertkit.model

    ours = bertkit.model.BertForSequenceClassification.from_pretrained(tmp_path / "run").eval()
    theirs = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run").eval()
    assert theirs.config.id2label == {0: "neg", 1: "pos"}
    batch = BertTokenizerFast.from_pretrained(tmp_path / "run")(["the food was wonderful"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, theirs(**batch).logits, atol=1e-5, rtol=1e-4)
    settings = json.loads((tmp_path / "run" / "bertkit_task.json").read_text())
    assert settings["task"] == "classify" and settings["text_column"] == "review"


def test_best_checkpoint_is_restored_and_early_stopping_stops(tiny_bert, tmp_path):
    import bertkit.model
    from bertkit.tokenizer import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(tiny_bert)
    model = bertkit.model.BertForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    encoded = tokenizer(["good", "bad", "fine", "poor"] * 4)
    features = [{"input_ids": ids, "labels": i % 2} for i, ids in enumerate(encoded["input_ids"])]
    scores = iter([0.7, 0.9, 0.8, 0.6, 0.5])  # best at the 2nd evaluation, then 2 worse ones
    snapshots = []

    def evaluate(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"accuracy": next(scores)}

    config = recipe_arguments(output_dir=str(tmp_path / "run"), num_train_epochs=10, eval_steps=2,
                              metric_for_best_model="accuracy", **FAST)
    result = finetune(model, features, config, evaluate=evaluate, tokenizer=tokenizer,
                      options=RecipeOptions(early_stopping_patience=2))
    assert len(snapshots) == 4 and result["steps"] == 8  # stopped after evaluations 3 and 4 did not improve
    assert (result["best_metric"], result["best_step"]) == (0.9, 4)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, snapshots[1][name])  # the 2nd evaluation's weights are back
    reloaded = bertkit.model.BertForSequenceClassification.from_pretrained(tmp_path / "run")
    torch.testing.assert_close(reloaded.classifier.weight, snapshots[1]["classifier.weight"])
    with pytest.raises(ValueError, match="metric_for_best 'f1' is not among"):
        finetune(model, features, recipe_arguments(output_dir=str(tmp_path / "r2"), metric_for_best_model="f1",
                                                   max_steps=1, eval_steps=1, device="cpu"),
                 evaluate=lambda m: {"accuracy": 1.0})


def test_frozen_encoder_trains_only_the_head(tiny_bert, tmp_path):
    import bertkit.model

    base = bertkit.model.BertForSequenceClassification(bertkit.model.BertConfig(num_labels=2))  # bert-base shape
    assert freeze_encoder(base) == 1538  # the seed's count: 768 * 2 + 2
    del base
    model = bertkit.model.BertForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    encoder_before = {k: v.clone() for k, v in model.bert.state_dict().items()}
    head_before = model.classifier.weight.detach().clone()
    features = [{"input_ids": [2, 200 + i, 3], "labels": i % 2} for i in range(16)]
    finetune(model, features, recipe_arguments(output_dir=str(tmp_path / "frozen"), num_train_epochs=1, **FAST),
             options=RecipeOptions(freeze_encoder=True))
    assert count_trainable(model) == 64 * 2 + 2
    for name, tensor in model.bert.state_dict().items():
        torch.testing.assert_close(tensor, encoder_before[name])
    assert not torch.equal(model.classifier.weight, head_before)


def test_collator_pads_token_labels_and_stacks_the_rest():
    batch = PaddingCollator(pad_token_id=0)([
        {"input_ids": [101, 7, 102], "attention_mask": [1, 1, 1], "labels": [-100, 3, -100], "word_ids": [None, 0, None]},
        {"input_ids": [101, 102], "attention_mask": [1, 1], "labels": [-100, -100], "word_ids": [None, None]},
    ])
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["labels"].tolist() == [[-100, 3, -100], [-100, -100, -100]]
    assert "word_ids" not in batch
    multi = PaddingCollator()([{"input_ids": [1], "labels": [0.0, 1.0]}, {"input_ids": [1, 2], "labels": [1.0, 1.0]}])
    assert multi["labels"].dtype == torch.float and multi["labels"].shape == (2, 2)


def test_multilabel_and_regression_recipes_run(tiny_bert, tmp_path):
    multi = tmp_path / "multi.jsonl"
    multi.write_text("".join(json.dumps({"text": f"{a} and {b}", "labels": [x for x in (a, b) if x != "none"]}) + "\n"
                             for a in ("sports", "music", "none") for b in ("politics", "art", "none") for _ in range(3)))
    result = finetune_classifier(tiny_bert, multi, problem_type="multi_label_classification",
                                 args=recipe_arguments(output_dir=str(tmp_path / "m"), max_steps=3, eval_steps=3, **FAST))
    assert set(result["eval"]) >= {"micro_f1", "subset_accuracy", "loss"} and result["metric_for_best"] == "micro_f1"
    reg = tmp_path / "reg.csv"
    reg.write_text("text,score\n" + "".join(f"rated {i % 5} stars,{i % 5}\n" for i in range(30)))
    result = finetune_classifier(tiny_bert, reg, label_column="score", problem_type="regression",
                                 args=recipe_arguments(output_dir=str(tmp_path / "r"), max_steps=3, eval_steps=3, **FAST))
    assert set(result["eval"]) >= {"mse", "pearson"}


# --------------------------------------------------------------------------- the commands on the bundled samples


def run_cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_commands_classify_on_the_bundled_sample(tiny_bert, tmp_path, capsys):
    samples = Path(__file__).resolve().parents[1] / "bertkit" / "samples" / "tasks"
    out = tmp_path / "cls"
    assert run_cli("finetune", "classify", "--model", tiny_bert, "--train", samples / "sentiment_train.tsv",
                   "--eval", samples / "sentiment_dev.tsv", "--output", out, "--epochs", 1, "--batch-size", 16,
                   "--device", "cpu") == 0
    assert "accuracy=" in capsys.readouterr().out
    assert run_cli("evaluate", "--model", out, "--data", samples / "sentiment_dev.tsv", "--output", tmp_path / "m.json") == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["examples"] == 16 and 0 <= metrics["accuracy"] <= 1
    assert run_cli("predict", "--model", out, "--input", samples / "sentiment_dev.tsv", "--output", tmp_path / "p.tsv") == 0
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["text", "label", "score", "p_0", "p_1"] and len(lines) == 17
    p0, p1 = (float(x) for x in lines[1].split("\t")[3:5])
    assert p0 + p1 == pytest.approx(1, abs=1e-5)


def test_commands_ner_and_qa_on_the_bundled_samples(tiny_bert, tmp_path):
    samples = Path(__file__).resolve().parents[1] / "bertkit" / "samples" / "tasks"
    assert run_cli("finetune", "ner", "--model", tiny_bert, "--train", samples / "ner_train.conll", "--eval",
                   samples / "ner_dev.conll", "--output", tmp_path / "ner", "--epochs", 2, "--lr", 1e-3,
                   "--batch-size", 8, "--device", "cpu") == 0
    assert run_cli("predict", "--model", tmp_path / "ner", "--input", samples / "ner_dev.conll",
                   "--output", tmp_path / "tagged.conll") == 0
    tagged = [l.split() for l in (tmp_path / "tagged.conll").read_text().splitlines() if l.strip()]
    assert tagged[0][:2] == ["Nvidia", "B-ORG"] and len(tagged[0]) == 3  # word, gold tag, predicted tag
    (tmp_path / "texts.txt").write_text("Tim Cook visited Paris.\nNothing here.\n")
    assert run_cli("predict", "--model", tmp_path / "ner", "--input", tmp_path / "texts.txt",
                   "--output", tmp_path / "entities.jsonl") == 0
    rows = [json.loads(l) for l in (tmp_path / "entities.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["Tim Cook visited Paris.", "Nothing here."]
    for row in rows:
        for entity in row["entities"]:
            assert {"entity_group", "score", "word", "start", "end"} <= set(entity)

    assert run_cli("finetune", "qa", "--model", tiny_bert, "--train", samples / "qa_train.json", "--eval",
                   samples / "qa_dev.json", "--output", tmp_path / "qa", "--epochs", 1, "--max-seq-length", 64,
                   "--doc-stride", 16, "--batch-size", 8, "--device", "cpu") == 0
    assert run_cli("predict", "--model", tmp_path / "qa", "--input", samples / "qa_dev.json",
                   "--output", tmp_path / "answers.json") == 0
    answers = json.loads((tmp_path / "answers.json").read_text())
    gold = json.loads((samples / "qa_dev.json").read_text())
    contexts = {q["id"]: p["context"] for a in gold["data"] for p in a["paragraphs"] for q in p["qas"]}
    assert set(answers) == set(contexts)
    assert all(answer in contexts[qid] for qid, answer in answers.items())  # cut from the context
    assert run_cli("evaluate", "--model", tmp_path / "qa", "--data", samples / "qa_dev.json") == 0


def test_command_errors_are_one_clear_line(tiny_bert, polarity_file, tmp_path, capsys):
    code = run_cli("finetune", "classify", "--model", tiny_bert, "--train", polarity_file, "--output", tmp_path / "x",
                   "--text-column", "text")
    assert code == 2
    assert "no text column 'text'; the file has columns ['review', 'sentiment']" in capsys.readouterr().err
    code = run_cli("finetune", "ner", "--model", tmp_path / "nowhere", "--train", polarity_file, "--eval", polarity_file,
                   "--output", tmp_path / "y")
    assert code == 2 and "nowhere' does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()  # a folder, but not a model
    code = run_cli("finetune", "classify", "--model", tmp_path / "empty", "--train", polarity_file,
                   "--output", tmp_path / "y")
    assert code == 2 and "config.json missing" in capsys.readouterr().err
    bad = tmp_path / "unseen.tsv"
    bad.write_text("review\tsentiment\nthe movie was great\tmeh\n")
    out = tmp_path / "cls"
    finetune_classifier(tiny_bert, polarity_file, args=recipe_arguments(output_dir=str(out), max_steps=1, **FAST),
                        text_column="review", label_column="sentiment")
    assert run_cli("evaluate", "--model", out, "--data", bad) == 2
    assert "label 'meh' was not seen in training; known labels: ['neg', 'pos']" in capsys.readouterr().err
