"""Added tokens (add_tokens / add_special_tokens) against transformers 5's BertTokenizer and BertTokenizerFast:
counts, attributes, ids, offsets, word ids, decoding, the folders both write and read, and the model grown to
the new vocabulary with resize_token_embeddings."""
from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

import bertkit
from bertkit.errors import UserError

transformers = pytest.importorskip("transformers")

TEXTS = [
    "I like NEWWORD and newwords.", "a newword<ent>x</ent>y", "foo bar Foo Bar foo  bar", "xnewwordy [X] [x]",
    "HELLO hello xhelloy", "a <sp> b", "CAFÉ Cafe café", "Exact exact EXACT", "ab xab abx ab, (ab)", "我中文的",
    "runing going", "  newline\n<sp>\tx", "a<sp><sp>b", "CAFE\u0301 x", "x\u200bcafe\u200by", "a dog <pad> [PAD] b",
    "Dog [CLS] [cls] [MASK]", "", "   ", "newword", "<ent><ent>newword<sp>", "unaffected plain text, no added token.",
]
PAIRS = [("Is NEWWORD here?", "Yes: <ent>newword</ent> is."), ("plain question", "a <sp> b café")]


def grow(tokenizer, added_token) -> list[int]:
    """One vocabulary change of every kind; the counts each call reports."""
    return [
        tokenizer.add_tokens(["newword", "hello", "Foo Bar", "[X]", "newword", ""]),  # "hello" is in the vocab
        tokenizer.add_tokens("newword"),
        tokenizer.add_special_tokens({"additional_special_tokens": ["<ent>", "</ent>"]}),
        tokenizer.add_tokens([added_token("<sp>", lstrip=True, rstrip=True), "café", added_token("Exact", normalized=False),
                              added_token("ab", single_word=True), "中文", "##ing"]),
        tokenizer.add_special_tokens({"pad_token": "<pad>"}),
        tokenizer.add_tokens(["dog"], special_tokens=True),
        tokenizer.add_special_tokens({"cls_token": "[CLS]"}),
    ]


def flags(token) -> dict:
    return {name: getattr(token, name) for name in ("content", "single_word", "lstrip", "rstrip", "normalized", "special")}


def assert_same_vocabulary(ours, theirs) -> None:
    assert (len(ours), ours.vocab_size) == (len(theirs), theirs.vocab_size)
    assert ours.all_special_tokens == theirs.all_special_tokens
    assert ours.all_special_ids == theirs.all_special_ids
    assert (ours.pad_token, ours.pad_token_id) == (theirs.pad_token, theirs.pad_token_id)
    assert ours.added_tokens_encoder == theirs.added_tokens_encoder
    assert {i: flags(t) for i, t in ours.added_tokens_decoder.items()} == \
        {i: flags(t) for i, t in theirs.added_tokens_decoder.items()}
    assert ours.get_vocab() == theirs.get_vocab()
    new_ids = list(range(ours.vocab_size - 2, len(theirs)))
    assert ours.convert_ids_to_tokens(new_ids) == theirs.convert_ids_to_tokens(new_ids)
    tokens = ["newword", "Foo Bar", "foo bar", "<ent>", "<sp>", "café", "cafe", "Exact", "[X]", "nothere"]
    assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)


def assert_same_encodings(ours, theirs) -> None:
    for text in TEXTS:
        mine, reference = ours(text, return_offsets_mapping=True), theirs(text, return_offsets_mapping=True)
        assert mine["input_ids"] == reference["input_ids"], text
        assert [tuple(o) for o in mine["offset_mapping"]] == [tuple(o) for o in reference["offset_mapping"]], text
        assert mine.word_ids() == reference.word_ids(), text
        for skip in (False, True):
            assert ours.decode(mine["input_ids"], skip_special_tokens=skip) == \
                theirs.decode(reference["input_ids"], skip_special_tokens=skip), (text, skip)
        if "<sp>" not in text:  # HF's tokens hold the whitespace an lstrip/rstrip token took; ours its content
            assert ours.tokenize(text) == theirs.tokenize(text), text
    kwargs = dict(padding=True, truncation="only_second", max_length=12, stride=2, return_overflowing_tokens=True,
                  return_offsets_mapping=True, return_special_tokens_mask=True)
    mine, reference = ours(PAIRS, **kwargs), theirs(PAIRS, **kwargs)
    for key in reference:
        assert [list(map(tuple, r)) if key == "offset_mapping" else r for r in mine[key]] == \
            [list(map(tuple, r)) if key == "offset_mapping" else r for r in reference[key]], key
    assert [mine.word_ids(i) for i in range(len(mine["input_ids"]))] == \
        [reference.word_ids(i) for i in range(len(reference["input_ids"]))]
    words = ["a", "NEWWORD", "<ent>", "café", "x<sp>y"]
    mine = ours(words, is_split_into_words=True, return_offsets_mapping=True)
    reference = theirs(words, is_split_into_words=True, return_offsets_mapping=True)
    assert mine["input_ids"] == reference["input_ids"] and mine.word_ids() == reference.word_ids()
    assert [tuple(o) for o in mine["offset_mapping"]] == [tuple(o) for o in reference["offset_mapping"]]


@pytest.fixture(scope="module")
def grown(minilm_dir):
    """bertkit's tokenizer and transformers' (both its classes) after the same vocabulary changes."""
    ours = bertkit.BertTokenizer.from_pretrained(minilm_dir)
    counts = grow(ours, bertkit.AddedToken)
    theirs = {}
    for name in ("BertTokenizerFast", "BertTokenizer"):
        theirs[name] = getattr(transformers, name).from_pretrained(minilm_dir)
        assert grow(theirs[name], transformers.AddedToken) == counts, name
    assert counts == [4, 0, 2, 6, 1, 1, 0]
    return ours, theirs


@pytest.mark.parametrize("name", ["BertTokenizerFast", "BertTokenizer"])
def test_vocabulary_changes_match_transformers(grown, name):
    ours, theirs = grown[0], grown[1][name]
    assert_same_vocabulary(ours, theirs)
    assert ours.additional_special_tokens == ours.extra_special_tokens == ["<ent>", "</ent>"]
    assert len(ours) == ours.vocab_size + 10  # "hello", "ab", "##ing" and "dog" keep their vocabulary ids
    assert_same_encodings(ours, theirs)


def test_transformers_added_token_objects_are_accepted(minilm_dir):
    ours = bertkit.BertTokenizer.from_pretrained(minilm_dir)
    assert ours.add_tokens([transformers.AddedToken("<m>", lstrip=True)]) == 1
    assert flags(ours.added_tokens_decoder[ours.vocab_size]) == flags(bertkit.AddedToken("<m>", lstrip=True))
    assert ours.tokenize("a <m> b") == ["a", "<m>", "b"]
    assert ours("a  <m> b", return_offsets_mapping=True)["offset_mapping"][2] == (1, 6)  # the spaces it took


def test_save_and_load_both_ways(grown, tmp_path):
    ours, theirs = grown[0], grown[1]["BertTokenizerFast"]
    ours.save_pretrained(tmp_path / "ours")
    vocab_lines = (tmp_path / "ours" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab_lines) == ours.vocab_size and "newword" not in vocab_lines  # vocab.txt stays the WordPiece one
    beyond = json.loads((tmp_path / "ours" / "added_tokens.json").read_text(encoding="utf-8"))
    assert beyond == {t: i for t, i in theirs.added_tokens_encoder.items() if i >= theirs.vocab_size}
    config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["added_tokens_decoder"][str(ours.vocab_size)]["content"] == "newword"
    theirs.save_pretrained(tmp_path / "theirs")  # transformers 5: tokenizer.json + tokenizer_config.json
    reloaded = {
        "bertkit from bertkit": bertkit.BertTokenizer.from_pretrained(tmp_path / "ours"),
        "AutoTokenizer from bertkit": transformers.AutoTokenizer.from_pretrained(tmp_path / "ours"),
        "BertTokenizerFast from bertkit": transformers.BertTokenizerFast.from_pretrained(tmp_path / "ours"),
        "bertkit from transformers": bertkit.BertTokenizer.from_pretrained(tmp_path / "theirs"),
    }
    for name, tokenizer in reloaded.items():
        assert_same_vocabulary(tokenizer, theirs)
        for text in TEXTS:
            assert tokenizer(text)["input_ids"] == theirs(text)["input_ids"], (name, text)
            ids = theirs(text)["input_ids"]
            assert tokenizer.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    again = reloaded["bertkit from bertkit"]
    again.save_pretrained(tmp_path / "ours")  # saving over a folder gives the same files
    assert bertkit.BertTokenizer.from_pretrained(tmp_path / "ours").added_tokens_encoder == ours.added_tokens_encoder


def transformers_4_folder(minilm_dir, folder, with_decoder: bool, with_tokenizer_json: bool):
    """What transformers 4 writes after add_tokens(["newword"]) and additional_special_tokens ["<ent>"]: vocab.txt
    unchanged, added_tokens.json, the specials map and (4.34 on) "added_tokens_decoder" in tokenizer_config.json;
    the fast tokenizer also writes tokenizer.json."""
    folder.mkdir()
    shutil.copy(minilm_dir / "vocab.txt", folder / "vocab.txt")
    (folder / "added_tokens.json").write_text(json.dumps({"<ent>": 30523, "newword": 30522}))
    specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                "mask_token": "[MASK]", "additional_special_tokens": ["<ent>"]}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512, **specials}
    entries = {"0": "[PAD]", "100": "[UNK]", "101": "[CLS]", "102": "[SEP]", "103": "[MASK]", "30523": "<ent>"}
    if with_decoder:
        config["added_tokens_decoder"] = {
            i: {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                "special": True} for i, t in entries.items()}
        config["added_tokens_decoder"]["30522"] = {"content": "newword", "lstrip": False, "normalized": True,
                                                   "rstrip": False, "single_word": False, "special": False}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if with_tokenizer_json:
        data = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
        data["added_tokens"] += [
            {"id": 30522, "content": "newword", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False},
            {"id": 30523, "content": "<ent>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}]
        (folder / "tokenizer.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("with_decoder, with_tokenizer_json", [(False, False), (True, False), (True, True)],
                         ids=["slow-before-4.34", "slow", "fast"])
def test_reads_transformers_4_folders(minilm_dir, tmp_path, with_decoder, with_tokenizer_json):
    folder = transformers_4_folder(minilm_dir, tmp_path / "v4", with_decoder, with_tokenizer_json)
    ours = bertkit.BertTokenizer.from_pretrained(folder)
    theirs = transformers.BertTokenizerFast.from_pretrained(folder)
    assert len(ours) == len(theirs) == 30524 and ours.additional_special_tokens == ["<ent>"]
    assert ours.added_tokens_encoder == theirs.added_tokens_encoder
    for text in ["A NEWWORD <ent> x", "newwords<ent>", "plain"]:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
        assert ours.decode(ours(text)["input_ids"], skip_special_tokens=True) == \
            theirs.decode(theirs(text)["input_ids"], skip_special_tokens=True)


def test_fast_path_stays_and_pickle_keeps_added_tokens(minilm_dir):
    tokenizer = bertkit.BertTokenizer.from_pretrained(minilm_dir)
    # only the special tokens: one C-level regex search rules a text out, as before added tokens existed
    assert tokenizer._splitter.plain and tokenizer._splitter.screen("plain text") is None
    assert tokenizer.add_tokens(["newword", bertkit.AddedToken("<sp>", rstrip=True)]) == 2
    assert not tokenizer._splitter.plain
    copy = pickle.loads(pickle.dumps(tokenizer))
    for text in TEXTS:
        assert copy(text, return_offsets_mapping=True) == tokenizer(text, return_offsets_mapping=True)
    assert copy.added_tokens_decoder == tokenizer.added_tokens_decoder


def test_bad_input_says_what_to_do(minilm_dir, tmp_path):
    tokenizer = bertkit.BertTokenizer.from_pretrained(minilm_dir)
    with pytest.raises(UserError, match="not a special token.*additional_special_tokens"):
        tokenizer.add_special_tokens({"entity_token": "<e>"})
    with pytest.raises(UserError, match="must be a list"):
        tokenizer.add_special_tokens({"additional_special_tokens": "<e>"})
    with pytest.raises(TypeError, match="str or an AddedToken"):
        tokenizer.add_tokens([5])
    assert tokenizer.add_tokens([]) == 0 and tokenizer.add_special_tokens({}) == 0 and len(tokenizer) == 30522
    folder = transformers_4_folder(minilm_dir, tmp_path / "bad", with_decoder=False, with_tokenizer_json=False)
    (folder / "added_tokens.json").write_text(json.dumps({"newword": "x"}))
    with pytest.raises(UserError, match="added_tokens.json maps 'newword'"):
        bertkit.BertTokenizer.from_pretrained(folder)


def test_resize_token_embeddings_after_adding_tokens(minilm_dir):
    """The whole flow, in bertkit and in transformers: add tokens, grow the model, encode, run it."""
    sentence = "The COVIDVARIANT spread <ent>fast</ent>."
    results = {}
    for name, library in (("bertkit", bertkit), ("transformers", transformers)):
        tokenizer = library.BertTokenizer.from_pretrained(minilm_dir)
        model = library.BertModel.from_pretrained(minilm_dir).eval()
        added = tokenizer.add_tokens(["covidvariant"]) + tokenizer.add_special_tokens(
            {"additional_special_tokens": ["<ent>", "</ent>"]})
        model.resize_token_embeddings(len(tokenizer))
        batch = tokenizer(sentence, return_tensors="pt")
        rows = model.get_input_embeddings().weight.shape[0]
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        results[name] = (added, len(tokenizer), rows, batch["input_ids"][0].tolist(), tuple(hidden.shape))
    assert results["bertkit"] == results["transformers"]
    added, size, rows, ids, shape = results["bertkit"]
    assert (added, size, rows) == (3, 30525, 30525) and shape == (1, len(ids), 384)
    assert {30522, 30523, 30524} <= set(ids) and max(ids) < rows


def test_the_longest_added_token_wins_at_the_leftmost_match(minilm_dir):
    tokens = ["zq", "zqzq", "zqzqzq", "qzx", "Zq.", "zq.x"]
    ours = bertkit.BertTokenizer.from_pretrained(minilm_dir)
    theirs = transformers.BertTokenizerFast.from_pretrained(minilm_dir)
    assert ours.add_tokens(tokens) == theirs.add_tokens(tokens) == 6
    for text in ["zqzqzqzq", "ZQZQZQZQzx", "zqzx zq.x zq. ZQ.X", "xzqzqzqzqzqzqzqzqzqx"]:
        mine, reference = ours(text, return_offsets_mapping=True), theirs(text, return_offsets_mapping=True)
        assert mine["input_ids"] == reference["input_ids"], text
        assert [tuple(o) for o in mine["offset_mapping"]] == [tuple(o) for o in reference["offset_mapping"]], text
