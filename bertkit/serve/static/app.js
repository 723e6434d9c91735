// The page at `/`: one button per task the model serves (from GET /info), results as tables,
// and the attention view (attention.js). Plain DOM code, no build step, nothing from a CDN.
"use strict";

const $ = (selector) => document.querySelector(selector);
const LABELS = {
  tokenize: "Tokenize", embed: "Embed", "fill-mask": "Fill mask", "next-sentence": "Next sentence",
  classify: "Classify", ner: "NER", qa: "Question answering", attention: "Attention",
};

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function table(headers, rows, rowClass) {
  const t = document.createElement("table");
  const head = t.createTHead().insertRow();
  for (const h of headers) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  const body = t.createTBody();
  for (const values of rows) {
    const row = body.insertRow();
    if (rowClass) row.className = rowClass;
    for (const value of values) {
      if (value instanceof Node) row.insertCell().appendChild(value);
      else cell(row, value, typeof value === "number" ? "num" : "");
    }
  }
  return t;
}

function scoreBar(score) {
  const span = document.createElement("span");
  span.append(`${(100 * score).toFixed(1)}% `);
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = `${Math.round(120 * score)}px`;
  span.appendChild(bar);
  return span;
}

function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter((line) => line);
}

// task -> [request body from the inputs, renderer of the response]
const TASKS = {
  tokenize: [
    (text, second) => (second ? { inputs: text, text_pair: second } : { inputs: text }),
    ([result]) => table(["#", "token", "id", "segment", "chars"],
      result.tokens.map((token, i) => [i, token, result.input_ids[i], result.token_type_ids[i], result.offsets[i].join("-")]), "token-row"),
  ],
  embed: [
    (text) => ({ inputs: lines(text) }),
    (results, request) => {
      const box = document.createElement("div");
      const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      box.appendChild(table(["text", "dimensions", "norm", "first values"], results.map((v, i) =>
        [request.inputs[i], v.length, Number(norm(v).toFixed(4)), v.slice(0, 6).map((x) => x.toFixed(3)).join(", ") + ", ..."]), "embedding-row"));
      if (results.length > 1) {  // cosine similarities between the lines
        const cos = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) / (norm(a) * norm(b));
        box.appendChild(table(["cosine", ...results.map((_, i) => `#${i}`)],
          results.map((a, i) => [`#${i}`, ...results.map((b) => Number(cos(a, b).toFixed(3)))]), "similarity-row"));
      }
      return box;
    },
  ],
  "fill-mask": [
    (text) => ({ inputs: text, top_k: 5 }),
    ([result]) => {
      // one mask: a list of candidates; several masks: one list per mask
      const perMask = Array.isArray(result[0]) ? result : [result];
      const box = document.createElement("div");
      perMask.forEach((candidates, m) => {
        if (perMask.length > 1) box.appendChild(document.createElement("h3")).textContent = `mask ${m + 1}`;
        box.appendChild(table(["token", "score", "sequence"],
          candidates.map((c) => [c.token_str, scoreBar(c.score), c.sequence]), "candidate"));
      });
      return box;
    },
  ],
  "next-sentence": [
    (text, second) => ({ inputs: { text, text_pair: second } }),
    ([result]) => table(["label", "score", "IsNext", "NotNext"],
      [[result.label, scoreBar(result.score), scoreBar(result.probabilities.IsNext), scoreBar(result.probabilities.NotNext)]], "nsp-row"),
  ],
  classify: [
    (text) => ({ inputs: text }),
    ([result]) => {
      const labels = Array.isArray(result) ? result : [result];
      return table(["label", "score"], labels.map((r) => [r.label, scoreBar(r.score)]), "label-row");
    },
  ],
  ner: [
    (text) => ({ inputs: text }),
    ([entities], request) => {
      const box = document.createElement("div");
      const shown = box.appendChild(document.createElement("p"));
      let at = 0;
      for (const e of entities) {  // the text with each entity highlighted, by character offsets
        if (e.start < at) continue;
        shown.append(request.inputs.slice(at, e.start));
        const mark = shown.appendChild(document.createElement("mark"));
        mark.className = "entity-span";
        mark.textContent = request.inputs.slice(e.start, e.end);
        mark.appendChild(document.createElement("sup")).textContent = e.entity_group || e.entity;
        at = e.end;
      }
      shown.append(request.inputs.slice(at));
      box.appendChild(table(["entity", "type", "score", "chars"],
        entities.map((e) => [e.word, e.entity_group || e.entity, scoreBar(e.score), `${e.start}-${e.end}`]), "entity"));
      if (!entities.length) box.appendChild(document.createElement("p")).textContent = "no entities found";
      return box;
    },
  ],
  qa: [
    (text, second) => ({ inputs: { question: text, context: second } }),
    ([result]) => table(["answer", "score", "chars"], [[result.answer, scoreBar(result.score), `${result.start}-${result.end}`]], "answer-row"),
  ],
  attention: [
    (text, second) => (second ? { inputs: text, text_pair: second } : { inputs: text }),
    ([data]) => {
      AttentionView.render($("#attention"), data);
      return document.createTextNode("");
    },
  ],
};

async function runTask(task) {
  const [makeRequest, renderResult] = TASKS[task];
  const request = makeRequest($("#text").value, $("#second").value.trim());
  for (const button of document.querySelectorAll("#tasks button")) button.classList.toggle("active", button.dataset.task === task);
  $("#result-title").textContent = LABELS[task];
  $("#error").hidden = true;
  $("#result").innerHTML = "";
  if (task !== "attention") $("#attention").innerHTML = "";
  document.body.dataset.state = "busy";
  try {
    const response = await fetch(`/${task}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? `${body.error.message} (${body.error.code})` : response.statusText);
    $("#result").appendChild(renderResult(body.results, request));
  } catch (error) {
    $("#error").textContent = error.message;
    $("#error").hidden = false;
  } finally {
    document.body.dataset.state = "done";
  }
}

async function start() {
  const info = await (await fetch("/info")).json();
  $("#model").textContent = `${info.model} (${info.architecture}, ${info.num_layers} layers, ${info.num_heads} heads)`;
  $("#mask-token").textContent = info.mask_token;
  if (info.tasks.includes("fill-mask")) $("#text").value = `He got bit by ${info.mask_token}.`;
  for (const task of info.tasks) {
    const button = $("#tasks").appendChild(document.createElement("button"));
    button.textContent = LABELS[task] || task;
    button.dataset.task = task;
    button.addEventListener("click", () => runTask(task));
  }
  document.body.dataset.ready = "true";
}

start();
