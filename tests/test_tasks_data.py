"""Readers, label maps, splits and features of the three tasks, on small files and on the real data.

Oracles: the counts in the data's PROVENANCE.md, HuggingFace's tokenizer (word_ids, offsets, windows)
and the run_qa.py / run_ner.py algorithms written out here independently."""
from __future__ import annotations

import json
import lzma

import numpy as np
import pytest

from bertkit.tasks import classification, metrics, ner, qa


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    try:
        from bertkit.tokenizer import BertTokenizer
    except ImportError:  # the tokenizer package is still being written: HF's stands in
        from transformers import BertTokenizerFast as BertTokenizer
    return BertTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_dir):
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(minilm_dir)


# --------------------------------------------------------------------------- classification files


def test_tables_in_three_formats_give_the_same_examples(tmp_path):
    rows = [("a fine film", "pos"), ('a "so-so" one', "neg"), ("dull, slow", "neg")]
    (tmp_path / "d.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f'"{t.replace(chr(34), chr(34) * 2)}",{l}\n' for t, l in rows))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    with lzma.open(tmp_path / "d.tsv.xz", "wt") as f:
        f.write((tmp_path / "d.tsv").read_text())
    for name in ("d.tsv", "d.csv", "d.jsonl", "d.tsv.xz"):
        examples = classification.read_classification_file(tmp_path / name)
        assert [(e.text, e.label) for e in examples] == rows, name


def test_missing_column_names_the_columns_that_exist(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("review,stars\ngood,5\n")
    with pytest.raises(ValueError, match=r"no text column 'text'.*\['review', 'stars'\]"):
        classification.read_classification_file(path, text_column="text")
    with pytest.raises(ValueError, match=r"cannot guess the label column among \['review', 'stars'\]"):
        classification.read_classification_file(path, text_column="review")
    examples = classification.read_classification_file(path, text_column="review", label_column="stars")
    assert examples[0].label == "5"


def test_empty_file_and_missing_file_are_clear_errors(tmp_path):
    (tmp_path / "e.tsv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        classification.read_table(tmp_path / "e.tsv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        classification.read_table(tmp_path / "nope.tsv")


def test_label_maps_numeric_order_and_unseen_label_error():
    label2id, id2label = classification.build_label_maps(["10", "2", "0", "2"])
    assert id2label == {0: "0", 1: "2", 2: "10"} and label2id == {"0": 0, "2": 1, "10": 2}
    with pytest.raises(ValueError, match=r"label 'maybe' was not seen in training; known labels: \['0', '2', '10'\]"):
        classification.label_to_target("maybe", label2id, "single_label_classification")


def test_pairs_multilabel_and_regression_rows(tmp_path):
    path = tmp_path / "nli.jsonl"
    path.write_text(json.dumps({"premise": "A man sleeps.", "hypothesis": "Nobody sleeps.", "label": "contradiction"}) + "\n")
    [example] = classification.read_classification_file(path, text_column="premise", text_pair_column="hypothesis")
    assert (example.text, example.text_pair, example.label) == ("A man sleeps.", "Nobody sleeps.", "contradiction")

    rows = [{"text": "x", "labels": "sports|politics"}, {"text": "y", "labels": ["arts"]}]
    examples = classification.examples_from_rows(rows, problem_type="multi_label_classification")
    label2id, _ = classification.build_label_maps(e.label for e in examples)
    assert classification.label_to_target(examples[0].label, label2id, "multi_label_classification") == [0.0, 1.0, 1.0]

    rows = [{"text": "x", "label": "3.5"}]
    assert classification.examples_from_rows(rows, problem_type="regression")[0].label == 3.5
    with pytest.raises(ValueError, match="regression needs a number"):
        classification.examples_from_rows([{"text": "x", "label": "high"}], problem_type="regression")


def test_train_eval_split_is_the_seeds_70_30_seeded_and_disjoint():
    examples = list(range(100))
    train, evaluation = classification.train_eval_split(examples, test_size=0.3, seed=7)
    assert (len(train), len(evaluation)) == (70, 30)
    assert sorted(train + evaluation) == examples
    assert classification.train_eval_split(examples, 0.3, 7) == (train, evaluation)
    assert classification.train_eval_split(examples, 0.3, 8) != (train, evaluation)


def test_real_sst2_and_nsmc_files_read(shared_data):
    dev = classification.read_classification_file(shared_data / "en-sentiment-sst2" / "dev.tsv")
    assert len(dev) == 872 and {e.label for e in dev} == {"0", "1"}  # header 'sentence' guessed
    train_rows = classification.read_table(shared_data / "en-sentiment-sst2" / "train.tsv.xz")
    assert len(train_rows) == 67349 and list(train_rows[0]) == ["text", "label"]
    nsmc = classification.read_classification_file(shared_data / "ko-sentiment" / "dev.tsv")
    assert len(nsmc) == 12659 and nsmc[0].text.startswith("첨밀밀")


def test_encode_pairs_matches_the_tokenizer(tokenizer, hf_tokenizer):
    examples = [classification.ClassificationExample("I love Paris", "birds fly", "1"),
                classification.ClassificationExample("snow fall", "it is cold outside today", "0")]
    features = classification.encode_examples(examples, tokenizer, {"0": 0, "1": 1}, max_length=16)
    reference = hf_tokenizer(["I love Paris", "snow fall"], ["birds fly", "it is cold outside today"], truncation=True, max_length=16)
    assert [f["input_ids"] for f in features] == reference["input_ids"]
    assert [f["token_type_ids"] for f in features] == reference["token_type_ids"]
    assert [f["labels"] for f in features] == [1, 0]


# --------------------------------------------------------------------------- NER


def test_conll_reader_skips_docstart_and_picks_columns(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\n")
    sentences = ner.read_conll(path)
    assert [(s.words, s.tags) for s in sentences] == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]
    chunks = ner.read_conll(path, tag_column=2)
    assert chunks[0].tags == ["B-NP", "B-VP"]
    with pytest.raises(ValueError, match="no column 7"):
        ner.read_conll(path, tag_column=7)


def test_real_conll2003_counts_equal_its_provenance(shared_data):
    valid = ner.read_ner_file(shared_data / "ner-conll2003" / "valid.txt")
    assert len(valid) == 3250 and sum(len(s.words) for s in valid) == 51362
    entities = [e[0] for s in valid for e in metrics.get_entities(s.tags)]
    assert {t: entities.count(t) for t in set(entities)} == {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}
    label2id, _ = ner.build_tag_maps(valid)
    assert list(label2id) == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_ner_jsonl_and_iobes(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"tokens": ["New", "York", "is", "big"], "tags": ["B-LOC", "E-LOC", "O", "O"]}) + "\n"
                    + json.dumps({"tokens": ["Paris"], "tags": ["S-LOC"]}) + "\n")
    sentences = ner.read_ner_file(path)
    assert ner.detect_scheme([t for s in sentences for t in s.tags]) == "IOBES"
    label2id, _ = ner.build_tag_maps(sentences)
    assert list(label2id) == ["O", "B-LOC", "E-LOC", "S-LOC"]


SEED_WORDS = ["Elon", "Musk", "founded", "Tesla", "in", "California", "."]
SEED_TAGS = ["B-PER", "I-PER", "O", "B-ORG", "O", "B-LOC", "O"]
LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]  # seed 004's label_list


def run_ner_alignment(word_ids, tags, label2id, label_all_tokens):
    """HuggingFace run_ner.py's tokenize_and_align_labels, written out as the oracle."""
    labels, previous = [], None
    for word_idx in word_ids:
        if word_idx is None:
            labels.append(-100)
        elif word_idx != previous:
            labels.append(label2id[tags[word_idx]])
        else:
            tag = tags[word_idx]
            if label_all_tokens:
                tag = "I-" + tag[2:] if tag.startswith("B-") else tag
                labels.append(label2id[tag])
            else:
                labels.append(-100)
        previous = word_idx
    return labels


@pytest.mark.parametrize("all_subwords", [False, True])
def test_seed_sentence_labels_first_subword_or_all(tokenizer, hf_tokenizer, all_subwords):
    label2id = {l: i for i, l in enumerate(LABELS)}
    [feature] = ner.encode_sentences([ner.NerSentence(SEED_WORDS, SEED_TAGS)], tokenizer, label2id,
                                     label_all_subwords=all_subwords)
    reference = hf_tokenizer(SEED_WORDS, is_split_into_words=True)
    assert feature["input_ids"] == reference["input_ids"]
    assert feature["word_ids"] == reference.word_ids()
    assert feature["labels"] == run_ner_alignment(reference.word_ids(), SEED_TAGS, label2id, all_subwords)
    tokens = hf_tokenizer.convert_ids_to_tokens(feature["input_ids"])
    shown = [(t, LABELS[l] if l >= 0 else "IGN") for t, l in zip(tokens, feature["labels"])]
    if not all_subwords:  # the seed's table: later pieces of a word are ignored
        assert shown[3:5] == [("mu", "I-PER"), ("##sk", "IGN")]
    else:
        assert shown[1:3] == [("el", "B-PER"), ("##on", "I-PER")]


def test_word_predictions_take_the_first_subword():
    id2label = dict(enumerate(LABELS))
    word_ids = [None, 0, 0, 1, None]
    logits = np.eye(len(LABELS))[[0, 1, 3, 2, 0]]  # word 0 pieces disagree: the first (B-PER) wins
    assert ner.word_predictions(logits, word_ids, id2label, n_words=3) == ["B-PER", "I-PER", "O"]


# --------------------------------------------------------------------------- QA


@pytest.fixture(scope="module")
def squad(shared_data):
    return qa.read_squad(shared_data / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz")


def test_squad_reader_and_article_split(squad, tmp_path):
    assert len(squad) == 6437  # PROVENANCE: 70% of the dev articles
    train, evaluation = qa.split_by_article(squad, eval_fraction=0.3, seed=0)
    assert len(train) + len(evaluation) == len(squad)
    assert not {e.title for e in train} & {e.title for e in evaluation}
    (tmp_path / "bad.json").write_text('{"version": "1.1"}')
    with pytest.raises(ValueError, match="'data' list"):
        qa.read_squad(tmp_path / "bad.json")


def run_qa_features(examples, tokenizer, max_length, stride):
    """HuggingFace run_qa.py's prepare_train_features with the fast tokenizer, as the oracle."""
    encoded = tokenizer([e.question.lstrip() for e in examples], [e.context for e in examples],
                        truncation="only_second", max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
    out = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        example = examples[encoded["overflow_to_sample_mapping"][i]]
        sequence_ids = encoded.sequence_ids(i)
        start_char = example.answers[0]["answer_start"]
        end_char = start_char + len(example.answers[0]["text"])
        token_start = sequence_ids.index(1)
        token_end = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        if not (offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char):
            positions = (0, 0)
        else:
            while token_start < len(offsets) and offsets[token_start][0] <= start_char:
                token_start += 1
            while offsets[token_end][1] >= end_char:
                token_end -= 1
            positions = (token_start - 1, token_end + 1)
        out.append((encoded["input_ids"][i], positions))
    return out


def test_qa_features_equal_run_qa_windows_and_positions(squad, tokenizer, hf_tokenizer):
    examples = [e for e in squad[:400:10]]  # 40 questions over several articles
    ours = qa.prepare_features(examples, tokenizer, max_seq_length=128, doc_stride=32)
    reference = run_qa_features(examples, hf_tokenizer, 128, 32)
    assert len(ours) == len(reference) > len(examples)  # long contexts became several windows
    for feature, (input_ids, positions) in zip(ours, reference):
        assert feature["input_ids"] == input_ids
        assert (feature["start_positions"], feature["end_positions"]) == positions


@pytest.mark.parametrize("dataset", ["qa-squad-v1.1/squad-v1.1-dev-train-split.json.xz", "qa-korquad-1.0/KorQuAD_v1.0_dev.json.xz"])
def test_gold_positions_round_trip_to_the_gold_text(shared_data, tokenizer, dataset):
    """Logits that point at the gold token span give back the gold answer, cut from the original context
    by offsets: exact text for English and Korean alike (the seed's Korean answer came back as jamo)."""
    examples = qa.read_squad(shared_data / dataset)[:60]
    features = qa.prepare_features(examples, tokenizer, max_seq_length=192, doc_stride=64)
    starts, ends = [], []
    for f in features:
        s, e = np.full(len(f["input_ids"]), -10.0), np.full(len(f["input_ids"]), -10.0)
        if f["start_positions"] != 0:
            s[f["start_positions"]], e[f["end_positions"]] = 10.0, 10.0
        starts.append(s)
        ends.append(e)
    answers, nbest = qa.postprocess(examples, features, starts, ends)
    # the cut text always holds the gold answer; it is longer only where one token ([UNK] for a Korean word
    # the English vocabulary cannot spell) runs past the answer's end, e.g. '남침례교로' for '남침례교'
    assert all(e.answers[0]["text"] in answers[e.id] for e in examples)
    exact_text = sum(answers[e.id] == e.answers[0]["text"] for e in examples)
    assert exact_text >= 0.9 * len(examples)
    assert all(0 < c["score"] <= 1 for c in nbest[examples[0].id])


def test_question_is_cut_to_max_query_length(tokenizer):
    question = " ".join(["why"] * 100) + "?"
    cut = qa.truncate_question(question, tokenizer, 64)
    assert len(tokenizer.tokenize(cut)) == 64 and question.startswith(cut)


def test_v2_null_answer_wins_when_its_score_is_higher(tokenizer):
    example = qa.QAExample("q1", "Who?", "Nobody was there at all.", [], "t", True)
    [feature] = qa.prepare_features([example], tokenizer, with_positions=True)
    assert (feature["start_positions"], feature["end_positions"]) == (0, 0)
    n = len(feature["input_ids"])
    start, end = np.zeros(n), np.zeros(n)
    start[0] = end[0] = 5.0
    answers, _ = qa.postprocess([example], [feature], [start], [end], version_2_with_negative=True)
    assert answers == {"q1": ""}
    answers, _ = qa.postprocess([example], [feature], [start], [end], version_2_with_negative=False)
    assert answers["q1"] != ""
