"""Trainer parity with transformers where results or tools depend on it (issue 20, item 6): every schedule name,
label smoothing, the callback events, the sampling strategies, eval_on_start, reduce_lr_on_plateau and the
problem_type a regression head writes. Each is checked against transformers' own function where it has one."""
from __future__ import annotations

import pytest
import torch
from test_hf_trainer import tiny_classifier, token_rows

from bertkit import Trainer, TrainerCallback, TrainingArguments
from bertkit.train.optim import SCHEDULES, get_scheduler

SCHEDULE_KWARGS = {"cosine_with_restarts": {"num_cycles": 3}, "polynomial": {"lr_end": 1e-5, "power": 2.0},
                   "cosine_with_min_lr": {"min_lr": 1e-5}, "reduce_lr_on_plateau": {"patience": 0},
                   "warmup_stable_decay": {"num_decay_steps": 10, "decay_type": "1-sqrt", "min_lr_ratio": 0.1}}


@pytest.mark.parametrize("name", [n for n in SCHEDULES if n != "reduce_lr_on_plateau"])
def test_every_schedule_matches_transformers(name):
    import transformers

    rates = []
    for build in (get_scheduler, transformers.get_scheduler):
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=1e-3)
        schedule = build(name, optimizer, num_warmup_steps=5, num_training_steps=40,
                         scheduler_specific_kwargs=dict(SCHEDULE_KWARGS.get(name, {})))
        sequence = []
        for _ in range(45):
            sequence.append(schedule.get_last_lr()[0])
            optimizer.step()
            schedule.step()
        rates.append(sequence)
    assert rates[0] == pytest.approx(rates[1], abs=1e-12)
    assert len(set(rates[0])) > 1 or name == "constant"


def test_label_smoothing_matches_transformers_label_smoother():
    from transformers.trainer_pt_utils import LabelSmoother

    model = tiny_classifier(num_labels=3).eval()
    rows = token_rows(8, num_labels=3)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir="unused", label_smoothing_factor=0.1,
                                                          use_cpu=True, disable_tqdm=True), train_dataset=rows)
    batch = trainer._collate(trainer.train_rows)
    with torch.no_grad():
        ours = trainer.compute_loss(model, batch)
        reference = LabelSmoother(epsilon=0.1)(model(**{k: v for k, v in batch.items() if k != "labels"}),
                                               batch["labels"])
        plain = model(**batch).loss
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(ours, plain)  # it smooths


def test_callback_events_fire_in_hf_order(tmp_path):
    events = []

    class Recorder(TrainerCallback):
        def __getattribute__(self, name):
            if name.startswith("on_"):
                return lambda *args, **kwargs: events.append(name)
            return super().__getattribute__(name)

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, logging_steps=10, save_strategy="no", use_cpu=True,
                             disable_tqdm=True, eval_strategy="steps", eval_steps=2, eval_on_start=True)
    Trainer(model=tiny_classifier(), args=args, train_dataset=token_rows(16), eval_dataset=token_rows(4),
            callbacks=[Recorder()]).train()
    steps = [e for e in events if e in ("on_step_begin", "on_substep_end", "on_step_end")]
    assert steps == ["on_step_begin", "on_substep_end", "on_step_end"] * 2
    assert events[0] == "on_train_begin" and events[1] == "on_log" and events[2] == "on_evaluate"  # eval_on_start
    assert events.index("on_epoch_begin") < events.index("on_step_begin") and events[-1] == "on_train_end"


def test_sampling_strategies_and_data_seed(tmp_path):
    def first_batches(**extra):
        seen = []

        class Spy(TrainerCallback):
            pass

        trainer = Trainer(model=tiny_classifier(), train_dataset=token_rows(16), callbacks=[Spy()],
                          args=TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                                                 save_strategy="no", use_cpu=True, disable_tqdm=True, **extra))
        original = trainer.training_step
        trainer.training_step = lambda micro, scaler: seen.append(micro) or original(micro, scaler)
        trainer.train()
        return seen

    assert first_batches(train_sampling_strategy="sequential") == [[[0, 1, 2, 3]], [[4, 5, 6, 7]]]
    assert TrainingArguments(output_dir="x", train_sampling_strategy="random").group_by_length is False
    assert TrainingArguments(output_dir="x", train_sampling_strategy="group_by_length").group_by_length is True
    assert first_batches(data_seed=3) == first_batches(data_seed=3, seed=9) != first_batches(data_seed=4)
    with pytest.raises(ValueError, match="train_sampling_strategy"):
        TrainingArguments(output_dir="x", train_sampling_strategy="shuffled")


def test_reduce_lr_on_plateau_steps_on_the_evaluation(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4, learning_rate=1e-3,
                             lr_scheduler_type="reduce_lr_on_plateau",
                             lr_scheduler_kwargs={"patience": 0, "factor": 0.5, "mode": "max"},
                             eval_strategy="steps", eval_steps=2, metric_for_best_model="always_zero",
                             save_strategy="no", use_cpu=True, disable_tqdm=True, logging_steps=1)
    trainer = Trainer(model=tiny_classifier(), args=args, train_dataset=token_rows(16), eval_dataset=token_rows(4),
                      compute_metrics=lambda p: {"always_zero": 0.0})
    trainer.train()
    rates = [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 2)  # no improvement after evals 1, 2
    # steps 1-4 at the start rate (the first evaluation sets the best), 5-6 halved after the second one
    assert rates == pytest.approx([1e-3] * 4 + [5e-4] * 2)
    with pytest.raises(ValueError, match="reduce_lr_on_plateau"):
        TrainingArguments(output_dir="x", lr_scheduler_type="reduce_lr_on_plateau")


def test_a_regression_head_writes_its_problem_type(tmp_path):
    import transformers

    from bertkit import BertConfig, BertForSequenceClassification

    config = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                  num_labels=1)
    ours = BertForSequenceClassification(BertConfig(**config))
    theirs = transformers.BertForSequenceClassification(transformers.BertConfig(**config))
    ids, labels = torch.tensor([[2, 5, 3]]), torch.tensor([0.5])
    ours(input_ids=ids, labels=labels), theirs(input_ids=ids, labels=labels)
    assert ours.config.problem_type == theirs.config.problem_type == "regression"
    ours.save_pretrained(tmp_path)
    assert BertConfig.from_pretrained(tmp_path).problem_type == "regression"


def test_a_custom_compute_loss_reaches_training_evaluation_and_prediction(tmp_path):
    """HF users subclass Trainer.compute_loss (here: a weighted loss over an extra `weight` column, which
    remove_unused_columns=False lets through); training, evaluate() and predict() all use it."""
    import torch.nn.functional as F

    calls = {"train": 0, "eval": 0}

    class WeightedTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weight = inputs.pop("weight")
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = (F.cross_entropy(outputs.logits, labels, reduction="none") * weight).mean()
            calls["eval" if return_outputs else "train"] += 1
            return (loss, outputs) if return_outputs else loss

    rows = [{**row, "weight": 0.0 if i % 2 else 2.0} for i, row in enumerate(token_rows(16))]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                             remove_unused_columns=False, save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = WeightedTrainer(model=tiny_classifier(), args=args, train_dataset=rows, eval_dataset=rows[:8])
    trainer.train()
    assert calls["train"] == 2
    metrics = trainer.evaluate()
    model = trainer.model.eval()
    batch = trainer._collate(trainer.eval_rows)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected = (F.cross_entropy(logits, batch["labels"], reduction="none") * batch["weight"]).mean()
    assert calls["eval"] >= 1
    assert metrics["eval_loss"] == pytest.approx(float(expected), rel=1e-4)
    assert metrics["eval_loss"] != pytest.approx(float(F.cross_entropy(logits, batch["labels"])), rel=1e-3)
    predictions = trainer.predict(rows[:8])
    assert predictions.metrics["test_loss"] == pytest.approx(float(expected), rel=1e-4)
    assert predictions.predictions.shape == (8, 2)


def test_report_to_tensorboard_writes_the_logged_numbers(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = TrainingArguments(output_dir=str(tmp_path / "out"), logging_dir=str(tmp_path / "tb"), max_steps=4,
                             per_device_train_batch_size=4, logging_steps=1, eval_strategy="steps", eval_steps=2,
                             report_to="tensorboard", save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=tiny_classifier(), args=args, train_dataset=token_rows(16), eval_dataset=token_rows(4))
    trainer.train()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    logged = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    assert [s for s, _ in losses] == [s for s, _ in logged] == [1, 2, 3, 4]
    assert [v for _, v in losses] == pytest.approx([v for _, v in logged], abs=1e-6)
    assert [e.step for e in events.Scalars("eval/loss")] == [2, 4]
    with pytest.raises(ValueError, match="report_to"):
        Trainer(model=tiny_classifier(), args=TrainingArguments(output_dir=str(tmp_path), report_to="neptune"))


def test_an_iterable_dataset_trains_with_max_steps(tmp_path):
    rows = token_rows(10)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(rows)

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=4,
                             save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=tiny_classifier(), args=args, train_dataset=Stream())
    assert [r["input_ids"] for r in trainer.train_rows] == [r["input_ids"] for r in (rows + rows)[:16]]  # in order, again
    assert trainer.train().global_step == 4
    datasets = pytest.importorskip("datasets")
    streamed = datasets.Dataset.from_list(rows).to_iterable_dataset()
    assert Trainer(model=tiny_classifier(), args=args, train_dataset=streamed).train().global_step == 4
    with pytest.raises(ValueError, match="max_steps"):
        Trainer(model=tiny_classifier(), train_dataset=Stream(),
                args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, disable_tqdm=True))


def test_a_seeded_run_reproduces_transformers(minilm_dir, tmp_path):
    """After set_seed(42) a head that from_pretrained creates gets HF's initial weights, and the Trainer (random
    order, as HF's default) draws HF's batches, so with dropout off the first 5 losses are HF's."""
    import transformers

    import bertkit

    rows = [{**row, "input_ids": [101, *[2000 + i for i in row["input_ids"][1:-1]], 102]} for row in token_rows(40)]
    losses = {}
    for name, lib in (("ours", bertkit), ("hf", transformers)):
        lib.set_seed(42)
        model = lib.BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2, hidden_dropout_prob=0.0,
                                                                  attention_probs_dropout_prob=0.0)
        args = lib.TrainingArguments(output_dir=str(tmp_path / name), max_steps=5, per_device_train_batch_size=4,
                                     learning_rate=1e-4, logging_steps=1, save_strategy="no", use_cpu=True,
                                     disable_tqdm=True, report_to="none", seed=42,
                                     **({"group_by_length": False} if name == "ours" else {}))
        tokenizer = (lib.BertTokenizerFast if name == "hf" else lib.BertTokenizer).from_pretrained(minilm_dir)
        trainer = lib.Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
        trainer.train()
        losses[name] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses["ours"]) == 5
    assert losses["ours"] == pytest.approx(losses["hf"], abs=1e-4)


def test_save_only_model_checkpoints_hold_the_model_and_cannot_resume(tmp_path):
    from bertkit import BertForSequenceClassification

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, save_steps=2,
                             save_only_model=True, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=tiny_classifier(), args=args, train_dataset=token_rows(8))
    trainer.train()
    folder = tmp_path / "checkpoint-2"
    assert (folder / "trainer_state.json").is_file()
    assert not any((folder / name).exists() for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"))
    reloaded = BertForSequenceClassification.from_pretrained(folder)
    torch.testing.assert_close(reloaded.classifier.weight, trainer.model.classifier.weight)
    with pytest.raises(ValueError, match="save_only_model"):
        Trainer(model=tiny_classifier(), args=args, train_dataset=token_rows(8)).train(resume_from_checkpoint=True)


def test_hyperparameter_search_with_optuna(tmp_path):
    pytest.importorskip("optuna")
    from transformers.trainer_utils import default_compute_objective as theirs

    from bertkit.train.hyperparameter_search import default_compute_objective

    metrics = {"eval_loss": 0.5, "eval_accuracy": 0.75, "eval_f1": 0.5, "eval_runtime": 3.0, "epoch": 1.0}
    assert default_compute_objective(metrics) == theirs(dict(metrics)) == 1.25
    assert default_compute_objective({"eval_loss": 0.5, "epoch": 1}) == theirs({"eval_loss": 0.5, "epoch": 1})

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, eval_strategy="no",
                             save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model_init=tiny_classifier, args=args, train_dataset=token_rows(8), eval_dataset=token_rows(4))
    best = trainer.hyperparameter_search(
        hp_space=lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)},
        n_trials=3, direction="minimize")
    assert set(best.hyperparameters) == {"learning_rate"} and 1e-4 <= best.hyperparameters["learning_rate"] <= 1e-2
    assert best.objective == min(t.value for t in best.run_summary.trials)
    assert trainer.args is args  # the caller's arguments are back
    with pytest.raises(ValueError, match="model_init"):
        Trainer(model=tiny_classifier(), args=args, train_dataset=token_rows(8),
                eval_dataset=token_rows(4)).hyperparameter_search(n_trials=1)
