"""The names everyday HuggingFace code imports, each run on bertkit and on transformers with the same inputs."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import bertkit

TINY = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=32)


@pytest.mark.parametrize("name", [
    "logging", "AutoModelForMaskedLM", "AutoModelForMultipleChoice", "AutoModelForNextSentencePrediction",
    "AutoModelForPreTraining", "AutoModelForTokenClassification", "AutoModelForQuestionAnswering",
    "default_data_collator", "DataCollatorForMultipleChoice", "HfArgumentParser", "TrainerState", "TrainerControl",
    "PreTrainedModel", "IntervalStrategy", "PretrainedConfig", "BertPreTrainedModel",
])
def test_the_names_import(name):
    import transformers

    ours = getattr(bertkit, name)
    assert getattr(transformers, name) is not None and ours is not None
    assert name in dir(bertkit) or name == "logging"


@pytest.mark.parametrize("auto, head", [("AutoModelForMultipleChoice", "BertForMultipleChoice"),
                                        ("AutoModelForNextSentencePrediction", "BertForNextSentencePrediction"),
                                        ("AutoModelForPreTraining", "BertForPreTraining")])
def test_auto_classes_load_what_transformers_saved(auto, head, tmp_path):
    import transformers

    torch.manual_seed(0)
    reference = getattr(transformers, head)(transformers.BertConfig(**TINY)).eval()
    reference.save_pretrained(tmp_path)
    ours = getattr(bertkit, auto).from_pretrained(tmp_path).eval()
    assert type(ours).__name__ == head
    ids = torch.tensor([[2, 5, 9, 3]]) if head != "BertForMultipleChoice" else torch.tensor([[[2, 5, 3], [2, 7, 3]]])
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids=ids)[0], reference(input_ids=ids)[0], atol=1e-5, rtol=1e-4)


def test_default_data_collator_matches_transformers():
    from transformers import default_data_collator as theirs

    features = [{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "label": 1, "text": "a"},
                {"input_ids": [4, 5, 6], "attention_mask": [1, 1, 0], "label": 0, "text": "b"}]
    ours = bertkit.default_data_collator(features)
    reference = theirs([dict(f) for f in features])
    assert sorted(ours) == sorted(reference)
    for key in reference:
        assert torch.equal(ours[key], reference[key]) and ours[key].dtype == reference[key].dtype, key
    regression = bertkit.default_data_collator([{"input_ids": [1], "label": 0.5}, {"input_ids": [2], "label": 1.5}])
    assert regression["labels"].dtype == torch.float
    with pytest.raises(ValueError, match="DataCollatorWithPadding"):
        bertkit.default_data_collator([{"input_ids": [1, 2]}, {"input_ids": [1]}])


def test_multiple_choice_collator_matches_transformers(minilm_dir):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "DataCollatorForMultipleChoice"):
        pytest.skip("this transformers has no DataCollatorForMultipleChoice")
    tokenizer = transformers.BertTokenizerFast.from_pretrained(minilm_dir)
    ours_tokenizer = bertkit.BertTokenizer.from_pretrained(minilm_dir)
    question, choices = "Where is Paris?", ["in France", "on the moon, far away from here", "nowhere"]
    features = []
    for label in (0, 2):
        encoded = tokenizer([question] * 3, choices)
        features.append({**{k: v for k, v in encoded.items()}, "label": label})
    reference = transformers.DataCollatorForMultipleChoice(tokenizer)([dict(f) for f in features])
    ours = bertkit.DataCollatorForMultipleChoice(ours_tokenizer)(features)
    for key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
        assert torch.equal(ours[key], reference[key]), key
    assert ours["input_ids"].shape[:2] == (2, 3)


def test_hf_argument_parser_reads_the_scripts_flags(tmp_path):
    from transformers import HfArgumentParser as TheirParser
    from transformers import TrainingArguments as TheirArguments

    @dataclasses.dataclass
    class ModelArguments:
        model_name_or_path: str
        freeze: bool = False
        max_seq_length: int = 128

    argv = ["--model_name_or_path", "bert", "--max_seq_length", "64", "--output_dir", str(tmp_path),
            "--num_train_epochs", "2", "--learning_rate", "3e-5", "--do_train", "--eval_strategy", "epoch"]
    model_args, args = bertkit.HfArgumentParser((ModelArguments, bertkit.TrainingArguments)).parse_args_into_dataclasses(argv)
    their_model_args, theirs = TheirParser((ModelArguments, TheirArguments)).parse_args_into_dataclasses(argv)
    assert model_args == their_model_args
    for name in ("output_dir", "num_train_epochs", "learning_rate", "do_train", "seed", "per_device_train_batch_size"):
        assert getattr(args, name) == getattr(theirs, name), name
    assert args.eval_strategy == "epoch" == str(getattr(theirs.eval_strategy, "value", theirs.eval_strategy))
    with pytest.raises(SystemExit):
        bertkit.HfArgumentParser(ModelArguments).parse_args_into_dataclasses([])  # the required field is missing
    (tmp_path / "args.json").write_text(json.dumps({"model_name_or_path": "m", "freeze": True}))
    (from_json,) = bertkit.HfArgumentParser(ModelArguments).parse_json_file(str(tmp_path / "args.json"))
    assert from_json == ModelArguments("m", freeze=True)
    assert bertkit.TrainingArguments(output_dir="x", eval_strategy=bertkit.IntervalStrategy.EPOCH).eval_strategy == "epoch"


def test_config_and_model_helpers_match_transformers(tmp_path):
    import transformers

    ours = bertkit.AutoConfig.for_model("bert", **TINY)
    theirs = transformers.AutoConfig.for_model("bert", **TINY)
    assert (ours.hidden_size, ours.num_hidden_layers) == (theirs.hidden_size, theirs.num_hidden_layers)
    with pytest.raises(ValueError, match="BERT"):
        bertkit.AutoConfig.for_model("gpt2")
    assert ours.use_return_dict is True and ours.name_or_path == ""
    bertkit.BertModel(ours).save_pretrained(tmp_path)
    loaded = bertkit.BertModel.from_pretrained(tmp_path)
    assert loaded.config.name_or_path == str(tmp_path) == transformers.BertModel.from_pretrained(tmp_path).config.name_or_path
    assert "_name_or_path" not in loaded.config.to_dict()

    model = bertkit.BertForSequenceClassification(bertkit.BertConfig(**TINY))
    assert not model.is_gradient_checkpointing
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert model.is_gradient_checkpointing
    model.train()
    out = model(input_ids=torch.tensor([[2, 5, 9, 3]]), labels=torch.tensor([1]))
    out.loss.backward()  # recomputation runs
    assert model.classifier.weight.grad is not None
    with pytest.raises(ValueError, match="use_reentrant"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})


def test_version_flag(capsys):
    from bertkit.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"bertkit {bertkit.__version__}"


@pytest.mark.parametrize("loader", ["BertModel", "BertForSequenceClassification", "BertForTokenClassification",
                                    "AutoModel", "AutoModelForSequenceClassification", "AutoModelForMaskedLM"])
def test_loader_keywords_on_every_class(loader, tmp_path):
    import transformers

    torch.manual_seed(0)
    transformers.BertForMaskedLM(transformers.BertConfig(**TINY)).save_pretrained(tmp_path / "sub")
    cls = getattr(bertkit, loader)
    theirs = getattr(transformers, loader).from_pretrained(tmp_path / "sub", attn_implementation="eager").eval()
    for extra in ({}, {"num_labels": 3}):  # a config keyword beside them changes nothing about the loader's
        ours = cls.from_pretrained(tmp_path, subfolder="sub", device_map="auto" if torch.cuda.is_available() else "cpu",
                                   attn_implementation="eager", torch_dtype=torch.float32, **extra).eval()
        assert ours.device.type in ("cpu", "cuda") and ours.dtype == torch.float32
        with pytest.raises(ValueError, match="unknown config field .colour.*neither a loader keyword"):
            cls.from_pretrained(tmp_path / "sub", colour="red", **extra)
    ids = torch.tensor([[2, 5, 9, 3]])
    with torch.no_grad():
        ours_out = ours.to("cpu")(input_ids=ids, output_attentions=True)
        their_out = theirs(input_ids=ids, output_attentions=True)
    torch.testing.assert_close(ours_out.attentions[0], their_out.attentions[0], atol=1e-5, rtol=1e-4)
    assert cls.from_pretrained(tmp_path / "sub", device_map={"": "cpu"}).device.type == "cpu"
    with pytest.raises(ValueError, match="one device"):
        cls.from_pretrained(tmp_path / "sub", device_map={"embeddings": "cpu", "encoder": "cuda:0"})
    with pytest.raises(ValueError, match="flash_attention_2"):
        cls.from_pretrained(tmp_path / "sub", attn_implementation="flash_attention_2")
    with pytest.raises(FileNotFoundError, match="subfolder"):
        cls.from_pretrained(tmp_path, subfolder="nowhere")


def test_vocabulary_size_changes_match_transformers():
    import transformers

    config = dict(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ours = bertkit.BertForMaskedLM(bertkit.BertConfig(**config))
    theirs = transformers.BertForMaskedLM(transformers.BertConfig(**config))
    before = ours.get_input_embeddings().weight[:100].clone()
    for model in (ours, theirs):
        model.resize_token_embeddings(103, pad_to_multiple_of=8)
    assert ours.config.vocab_size == theirs.config.vocab_size == 104
    assert ours.num_parameters() == theirs.num_parameters()
    assert ours.num_parameters(exclude_embeddings=True) == theirs.num_parameters(exclude_embeddings=True)
    assert torch.equal(ours.get_input_embeddings().weight[:100], before)  # the old rows are kept
    assert ours.get_output_embeddings().weight is ours.get_input_embeddings().weight  # still tied
    with torch.no_grad():
        assert ours(input_ids=torch.tensor([[2, 103]])).logits.shape == (1, 2, 104)
    table = torch.nn.Embedding(120, 16)
    ours.set_input_embeddings(table)
    assert ours.get_input_embeddings() is table and ours.config.vocab_size == 120
    assert ours.get_output_embeddings().weight is table.weight
    with pytest.raises(ValueError, match="width 16"):
        ours.set_input_embeddings(torch.nn.Embedding(5, 8))
