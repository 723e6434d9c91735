"""Attention views like bertviz's: which tokens each token attends to, per layer and head.

    from bertkit.serve.attention_view import attention_html
    html = attention_html(model, tokenizer, "He got bit by Python")     # one self-contained page
    Path("view.html").write_text(html)

    bertkit attention "He got bit by Python" --model DIR --out view.html

The page shows the *head view* (tokens on both sides, a line from each token on the left to each
token on the right, as opaque as the attention weight; pick a layer and one head or all heads) and
the *model view* (a thumbnail per layer and head; click one to open it in the head view).
The same script (static/attention.js) draws the view in the server's page, so the two never differ.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from bertkit.errors import UserError

STATIC = Path(__file__).parent / "static"  # the web page, its script and styles: inlined here, served by the app
DECIMALS = 4  # attention weights in the JSON: enough to draw, a quarter of the bytes


def attention_data(
    model: Any, tokenizer: Any, text: str, text_pair: str | None = None, layer: int | None = None
) -> dict[str, Any]:
    """Tokens and attention weights: `attentions[layer][head][from_token][to_token]` (rows sum to 1).

    `model` is a BertModel or any BERT head model (its encoder is used). With `layer`, only that
    layer is returned (`layers` says which ones are there).
    """
    import torch

    encoder = getattr(model, "bert", model)
    encoded = tokenizer(text, text_pair, return_tensors="pt")
    device = next(encoder.parameters()).device
    inputs = {k: encoded[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}
    with torch.inference_mode():
        outputs = encoder(**inputs, output_attentions=True)
    maps = torch.stack([a[0] for a in outputs.attentions]).float()  # [layers, heads, tokens, tokens]
    layers = list(range(maps.shape[0]))
    if layer is not None:
        if not -len(layers) <= layer < len(layers):
            raise UserError(f"layer {layer} does not exist: the model has layers 0..{len(layers) - 1}")
        layers = [layers[layer]]  # also accepts -1 for the last
        maps = maps[layers]
    type_ids = encoded["token_type_ids"][0].tolist() if "token_type_ids" in encoded else []
    return {
        "tokens": tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist()),
        # where sentence B starts (None for one sentence): the view can tell the two apart
        "sentence_b_start": type_ids.index(1) if 1 in type_ids else None,
        "num_layers": len(outputs.attentions),
        "num_heads": int(maps.shape[1]),
        "layers": layers,
        "attentions": maps.double().round(decimals=DECIMALS).tolist(),  # double: 0.2004, not 0.20039999
    }


def view_fragment(data: dict[str, Any], element_id: str = "bertkit-attention") -> str:
    """The view of `data` as an HTML fragment (a <div>, its style and script, nothing fetched) to put
    inside another page, e.g. a report. Give each fragment on a page its own `element_id`."""
    script = (STATIC / "attention.js").read_text(encoding="utf-8")
    style = (STATIC / "attention.css").read_text(encoding="utf-8")
    # "</" inside a <script> would end it early: JSON allows the escaped form "<\/"
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    target = json.dumps(element_id)
    return f"""<style>
{style}
</style>
<div id="{html.escape(element_id)}"></div>
<script>
{script}
</script>
<script>
AttentionView.render(document.getElementById({target}), {payload});
</script>
"""


def view_html(data: dict[str, Any], title: str = "bertkit attention") -> str:
    """A self-contained page showing `data`: open it from disk, no server, nothing fetched."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{view_fragment(data, "attention")}
</body>
</html>
"""


def attention_html(
    model: Any, tokenizer: Any, text: str, text_pair: str | None = None, title: str | None = None,
    fragment: bool = False,
) -> str:
    """The attention of `model` on `text` (and `text_pair`) as one self-contained HTML page, or with
    `fragment=True` as a piece of HTML to put inside another page (what the demo's report does)."""
    data = attention_data(model, tokenizer, text, text_pair)
    if fragment:
        return view_fragment(data)
    shown = text if text_pair is None else f"{text} / {text_pair}"
    return view_html(data, title or f"Attention: {shown}")
