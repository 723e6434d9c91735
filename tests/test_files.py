"""bertkit.files: compressed text and JSON Lines as every reader of user files sees them."""
import bz2
import gzip
import lzma

import pytest

from bertkit.files import iter_jsonl, open_text


@pytest.mark.parametrize("suffix, opener", [("", open), (".xz", lzma.open), (".gz", gzip.open), (".bz2", bz2.open)])
def test_open_text_reads_plain_and_compressed_utf8(tmp_path, suffix, opener):
    path = tmp_path / f"reviews.txt{suffix}"
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("정말 재미있다\nvraiment génial\n")
    with open_text(path) as f:
        assert f.read().splitlines() == ["정말 재미있다", "vraiment génial"]


def test_open_text_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_text(tmp_path / "nope.tsv")


def test_iter_jsonl_skips_blank_lines_and_numbers_lines_from_one():
    lines = ['{"text": "a"}\n', "\n", '{"text": "b"}\n']
    assert list(iter_jsonl(lines, "x.jsonl")) == [(1, {"text": "a"}), (3, {"text": "b"})]


@pytest.mark.parametrize("line, problem", [("{oops", "line 2 is not valid JSON"), ("[1, 2]", "line 2 is not a JSON object")])
def test_iter_jsonl_names_the_bad_line(line, problem):
    with pytest.raises(ValueError, match=problem):
        list(iter_jsonl(['{"text": "ok"}', line], "x.jsonl"))


def test_read_json_object_names_a_corrupt_file_and_the_remedy(tmp_path):
    from bertkit.files import read_json_object

    good, truncated, listed = tmp_path / "good.json", tmp_path / "cut.json", tmp_path / "list.json"
    good.write_text('{"hidden_size": 128}')
    truncated.write_text('{"hidden_size": 1')
    listed.write_text("[1, 2]")
    assert read_json_object(good, "restore it") == {"hidden_size": 128}
    with pytest.raises(ValueError, match=r"cut.json is not valid JSON .*; restore it"):
        read_json_object(truncated, "restore it")
    with pytest.raises(ValueError, match="must hold a JSON object, found list; restore it"):
        read_json_object(listed, "restore it")
