// Attention views like bertviz's head view and model view. No dependencies.
//
//   AttentionView.render(element, data)
//
// `data` is what bertkit.serve.attention.attention_data returns (and POST /attention answers):
//   {tokens: [...], sentence_b_start: int|null, num_heads, layers: [layer numbers],
//    attentions: [layer][head][from][to]}
// Head view: tokens on both sides; a line from token i (left) to token j (right) per head, as
// opaque as the attention weight; one head, or all heads of a layer in their colours.
// Model view: a thumbnail per (layer, head); a click opens that head in the head view.
"use strict";

// `var` and the guard: several attention views may sit on one page (each fragment carries this script).
var AttentionView = window.AttentionView || (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const ROW = 22;          // pixels per token row
  const TOKEN_WIDTH = 110; // room for a token's text on each side
  const GAP = 200;         // where the lines run
  const MIN_WEIGHT = 0.01; // lighter lines are invisible anyway; skipping them keeps the SVG small
  const THUMB = 84;        // model-view thumbnail size

  function headColour(head, heads) {
    return `hsl(${Math.round((360 * head) / heads)}, 70%, 42%)`;
  }

  function element(tag, attributes = {}, parent = null, ns = null) {
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function render(container, data) {
    container.innerHTML = "";
    const root = element("div", { class: "attn" }, container);
    const controls = element("div", { class: "attn-controls" }, root);

    const layerLabel = element("label", {}, controls);
    layerLabel.append("Layer ");
    const layerSelect = element("select", { class: "attn-layer", "aria-label": "layer" }, layerLabel);
    data.layers.forEach((layer, index) => {
      const option = element("option", { value: String(index) }, layerSelect);
      option.textContent = String(layer);
    });
    const headLabel = element("label", {}, controls);
    headLabel.append(" Head ");
    const headSelect = element("select", { class: "attn-head", "aria-label": "head" }, headLabel);
    element("option", { value: "all" }, headSelect).textContent = "all";
    for (let head = 0; head < data.num_heads; head++) {
      element("option", { value: String(head) }, headSelect).textContent = String(head);
    }
    const caption = element("span", { class: "attn-caption" }, controls);
    element("p", { class: "attn-hint" }, root).textContent =
      "Left: the token that attends. Right: the tokens it attends to. Hover a token to see only its lines.";

    const headView = element("div", { class: "attn-head-view" }, root);
    element("h3", {}, root).textContent = "Model view (every layer and head; click one to open it above)";
    const modelView = element("div", { class: "attn-model-view" }, root);

    const draw = () => {
      const layerIndex = Number(layerSelect.value);
      const head = headSelect.value === "all" ? null : Number(headSelect.value);
      drawHeadView(headView, data, layerIndex, head);
      caption.textContent = `layer ${data.layers[layerIndex]}, ${head === null ? "all heads" : "head " + head}`;
      for (const thumb of modelView.querySelectorAll("canvas")) {
        const selected = Number(thumb.dataset.layerIndex) === layerIndex && (head === null || Number(thumb.dataset.head) === head);
        thumb.classList.toggle("attn-selected", selected);
      }
    };
    layerSelect.addEventListener("change", draw);
    headSelect.addEventListener("change", draw);
    drawModelView(modelView, data, (layerIndex, head) => {
      layerSelect.value = String(layerIndex);
      headSelect.value = String(head);
      draw();
      headView.scrollIntoView({ behavior: "smooth", block: "nearest" });
    });
    draw();
    return { layerSelect, headSelect, redraw: draw };
  }

  function drawHeadView(container, data, layerIndex, onlyHead) {
    container.innerHTML = "";
    const tokens = data.tokens;
    const height = tokens.length * ROW + 10;
    const width = 2 * TOKEN_WIDTH + GAP;
    const svg = element("svg", { width, height, class: "attn-svg", viewBox: `0 0 ${width} ${height}` }, container, SVG);
    const lines = element("g", { class: "attn-lines" }, svg, SVG);
    const heads = onlyHead === null ? [...Array(data.num_heads).keys()] : [onlyHead];
    const y = (index) => index * ROW + ROW / 2 + 5;
    for (const head of heads) {
      const weights = data.attentions[layerIndex][head];
      const colour = headColour(head, data.num_heads);
      weights.forEach((row, from) => {
        row.forEach((weight, to) => {
          if (weight < MIN_WEIGHT) return;
          element("line", {
            class: "attn-line", x1: TOKEN_WIDTH, y1: y(from), x2: TOKEN_WIDTH + GAP, y2: y(to),
            stroke: colour, "stroke-width": 2, "stroke-opacity": weight,
            "data-head": head, "data-from": from, "data-to": to,
          }, lines, SVG);
        });
      });
    }
    const isB = (index) => data.sentence_b_start !== null && index >= data.sentence_b_start;
    for (const side of ["left", "right"]) {
      tokens.forEach((token, index) => {
        const text = element("text", {
          class: `attn-token attn-${side}${isB(index) ? " attn-b" : ""}`,
          x: side === "left" ? TOKEN_WIDTH - 6 : TOKEN_WIDTH + GAP + 6, y: y(index) + 4,
          "text-anchor": side === "left" ? "end" : "start", "data-index": index,
        }, svg, SVG);
        text.textContent = token;
        // Hover a token: only its lines (outgoing on the left, incoming on the right), as bertviz does.
        const key = side === "left" ? "from" : "to";
        text.addEventListener("mouseenter", () => {
          for (const line of lines.children) line.classList.toggle("attn-hidden", line.dataset[key] !== String(index));
          text.classList.add("attn-active");
        });
        text.addEventListener("mouseleave", () => {
          for (const line of lines.children) line.classList.remove("attn-hidden");
          text.classList.remove("attn-active");
        });
      });
    }
  }

  function drawModelView(container, data, onPick) {
    container.innerHTML = "";
    const grid = element("div", { class: "attn-grid" }, container);
    grid.style.gridTemplateColumns = `4.5em repeat(${data.num_heads}, ${THUMB}px)`;
    element("div", {}, grid);
    for (let head = 0; head < data.num_heads; head++) {
      element("div", { class: "attn-grid-label" }, grid).textContent = `head ${head}`;
    }
    const n = data.tokens.length;
    data.layers.forEach((layer, layerIndex) => {
      element("div", { class: "attn-grid-label" }, grid).textContent = `layer ${layer}`;
      for (let head = 0; head < data.num_heads; head++) {
        const canvas = element("canvas", {
          width: THUMB, height: THUMB, class: "attn-thumb", title: `layer ${layer}, head ${head}`,
          "data-layer-index": layerIndex, "data-head": head,
        }, grid);
        const context = canvas.getContext("2d");
        context.strokeStyle = headColour(head, data.num_heads);
        const step = (THUMB - 8) / Math.max(n - 1, 1);
        data.attentions[layerIndex][head].forEach((row, from) => {
          row.forEach((weight, to) => {
            if (weight < MIN_WEIGHT) return;
            context.globalAlpha = weight;
            context.beginPath();
            context.moveTo(8, 4 + from * step);
            context.lineTo(THUMB - 8, 4 + to * step);
            context.stroke();
          });
        });
        canvas.addEventListener("click", () => onPick(layerIndex, head));
      }
    });
  }

  return { render, MIN_WEIGHT };
})();
