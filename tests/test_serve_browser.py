"""The web page in a real browser: headless Debian chromium driven by Playwright.

Loads `/` from running servers, types a sentence, runs fill-mask and NER, switches the attention
layer and head and checks the lines drawn against the attention the API returns; also opens a page
written by `bertkit attention` straight from disk (no server). Screenshots go to runs/test_serve_browser/.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import torch

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi) is not installed")

from bertkit.model import BertConfig, BertForPreTraining, BertForTokenClassification  # noqa: E402
from bertkit.serve.app import background_server, create_app  # noqa: E402
from bertkit.serve.service import Limits, ModelService  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "runs" / "test_serve_browser"
MIN_WEIGHT = 0.01  # attention.js draws no line lighter than this


def save_tiny(folder: Path, head: type, vocab_dir: Path, **config_fields) -> Path:
    torch.manual_seed(0)
    vocab_size = len((vocab_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())
    model = head(BertConfig.from_size("tiny", vocab_size=vocab_size, **config_fields))
    if head is BertForTokenClassification:
        with torch.no_grad():  # random weights, but never "O": the page always has entities to show
            model.classifier.bias[0] = -20.0
    model.save_pretrained(folder)
    shutil.copy(vocab_dir / "vocab.txt", folder / "vocab.txt")
    return folder


def check_head_view(page, data: dict, layer_index: int, head: int | None) -> None:
    """The lines drawn are the attention weights of that layer and head(s), token to token."""
    heads = range(data["num_heads"]) if head is None else [head]
    expected = {
        (h, i, j): weight
        for h in heads
        for i, row in enumerate(data["attentions"][layer_index][h])
        for j, weight in enumerate(row)
        if weight >= MIN_WEIGHT
    }
    drawn = page.eval_on_selector_all(
        ".attn-svg line.attn-line",
        "lines => lines.map(l => [+l.dataset.head, +l.dataset.from, +l.dataset.to, +l.getAttribute('stroke-opacity')])",
    )
    assert {(h, i, j): w for h, i, j, w in drawn} == pytest.approx(expected)
    assert len(drawn) == len(expected)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
def test_the_page_in_headless_chromium(tmp_path, minilm_dir):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    lm = ModelService(save_tiny(tmp_path / "lm", BertForPreTraining, minilm_dir), Limits(max_length=64))
    labels = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-ORG", 4: "I-ORG", 5: "B-LOC", 6: "I-LOC"}
    tagger = ModelService(save_tiny(tmp_path / "ner", BertForTokenClassification, minilm_dir, id2label=labels))
    sentence = "He got bit by [MASK] in the garden."

    with background_server(create_app(lm)) as lm_url, background_server(create_app(tagger)) as ner_url, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(lm_url + "/")
        expect(page.locator("body[data-ready=true]")).to_have_count(1)
        buttons = page.eval_on_selector_all("#tasks button", "bs => bs.map(b => b.dataset.task)")
        assert buttons == lm.tasks  # one button per task this model serves, and no NER

        # fill-mask: the table shows what the API answers
        page.fill("#text", sentence)
        page.click("button[data-task=fill-mask]")
        rows = page.locator("#result tr.candidate")
        expect(rows).to_have_count(5)
        api = httpx.post(lm_url + "/fill-mask", json={"inputs": sentence, "top_k": 5}).json()["results"][0]
        shown = [rows.nth(i).locator("td").first.inner_text() for i in range(5)]
        assert shown == [c["token_str"] for c in api]
        assert page.locator("#error").is_hidden()

        # a bad input shows the server's message, not a crash
        page.fill("#text", "no mask in this one")
        page.click("button[data-task=fill-mask]")
        expect(page.locator("#error")).to_contain_text("[MASK]")
        page.fill("#text", "He got bit by Python")

        # attention: tokens on both sides, lines weighted by attention, layer and head switches
        page.click("button[data-task=attention]")
        expect(page.locator(".attn-svg")).to_have_count(1)
        data = httpx.post(lm_url + "/attention", json={"inputs": "He got bit by Python"}).json()["results"][0]
        left = page.eval_on_selector_all(".attn-svg text.attn-left", "ts => ts.map(t => t.textContent)")
        right = page.eval_on_selector_all(".attn-svg text.attn-right", "ts => ts.map(t => t.textContent)")
        assert left == right == data["tokens"] == ["[CLS]", "he", "got", "bit", "by", "python", "[SEP]"]
        check_head_view(page, data, layer_index=0, head=None)  # the default: layer 0, all heads
        page.select_option("select.attn-layer", "1")
        page.select_option("select.attn-head", "1")
        expect(page.locator(".attn-caption")).to_have_text("layer 1, head 1")
        check_head_view(page, data, layer_index=1, head=1)
        # hovering a token keeps only its lines
        page.hover(".attn-svg text.attn-left[data-index='5']")
        visible_from = page.eval_on_selector_all(
            ".attn-svg line.attn-line:not(.attn-hidden)", "ls => [...new Set(ls.map(l => l.dataset.from))]")
        assert visible_from == ["5"]
        page.mouse.move(0, 0)
        # the model view: a thumbnail per layer and head; a click opens it in the head view
        assert page.locator("canvas.attn-thumb").count() == lm.num_layers * lm.num_heads
        page.click("canvas.attn-thumb[data-layer-index='0'][data-head='0']")
        expect(page.locator(".attn-caption")).to_have_text("layer 0, head 0")
        check_head_view(page, data, layer_index=0, head=0)
        page.screenshot(path=str(SCREENSHOTS / "attention.png"), full_page=True)

        # NER on a token-classification model: the entity rows and the highlighted text
        page.goto(ner_url + "/")
        expect(page.locator("body[data-ready=true]")).to_have_count(1)
        text = "Elon Musk founded Tesla in California."
        page.fill("#text", text)
        page.click("button[data-task=ner]")
        entity_rows = page.locator("#result tr.entity")
        expect(entity_rows.first).to_be_visible()
        entities = httpx.post(ner_url + "/ner", json={"inputs": text}).json()["results"][0]
        assert entity_rows.count() == len(entities) > 0
        types = [entity_rows.nth(i).locator("td").nth(1).inner_text() for i in range(len(entities))]
        assert types == [e["entity_group"] for e in entities]
        marks = page.eval_on_selector_all("mark.entity-span", "ms => ms.map(m => m.firstChild.textContent)")
        assert marks == [text[e["start"]:e["end"]] for e in entities]
        page.screenshot(path=str(SCREENSHOTS / "ner.png"), full_page=True)

        # the page `bertkit attention` writes works from disk, with no server
        from bertkit.cli import main

        view = tmp_path / "view.html"
        assert main(["attention", "He got bit by Python", "--model", str(tmp_path / "lm"), "--out", str(view)]) == 0
        page.goto(view.as_uri())
        expect(page.locator(".attn-svg")).to_have_count(1)
        page.select_option("select.attn-layer", "1")
        page.select_option("select.attn-head", "0")
        check_head_view(page, data, layer_index=1, head=0)
        page.screenshot(path=str(SCREENSHOTS / "static_view.png"), full_page=True)
        browser.close()
