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
