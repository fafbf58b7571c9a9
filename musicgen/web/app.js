// The page's script: asks /api/models what each model can do, sends the form to /api/jobs, and shows the job's
// progress, lines and pieces as /api/jobs/ID tells them. No library: nothing is fetched from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let job = null;  // the id of the job being shown
let polling = null;

async function loadModels() {
  const answer = await fetch("/api/models");
  models = await answer.json();
  $("model").replaceChildren(...models.map((m) => new Option(`${m.name} (${m.kind})`, m.name)));
  showModel();
}

function chosenModel() {
  return models.find((m) => m.name === $("model").value) || models[0];
}

// Offer what the chosen model knows: its labels, meters, chords, infilling.
function showModel() {
  const model = chosenModel();
  if (!model) return;
  const facts = [model.kind];
  const labels = Object.keys(model.labels);
  if (labels.length) facts.push(`steered by ${labels.join(", ")}`);
  if (model.chords.length > 12) facts.push(`writes over ${model.chords.length} chords`);
  else if (model.chords.length) facts.push(`writes over the chords ${model.chords.join(" ")}`);
  if (model.infilling) facts.push("fills in bars");
  if (model.melody_only) facts.push("writes melodies");
  $("model-facts").textContent = facts.join("; ");
  $("labels").replaceChildren(...labels.map((label) => {
    const select = document.createElement("select");
    select.dataset.label = label;
    select.setAttribute("aria-label", label);
    const any = label === "style" ? "chosen at random" : "any";
    select.append(new Option(any, ""), ...model.labels[label].map((value) => new Option(value, value)));
    const wrapper = document.createElement("label");
    wrapper.append(`${label} `, select);
    return wrapper;
  }));
  $("labels-box").hidden = labels.length === 0;
  $("meter").replaceChildren(new Option("the model's choice", ""), ...model.meters.map((m) => new Option(m, m)));
  $("meter-box").hidden = model.meters.length === 0;
  $("instruments-box").hidden = !model.instruments;
  for (const element of document.querySelectorAll(".needs-chords")) element.hidden = !model.chords.length;
  for (const element of document.querySelectorAll(".needs-infilling")) element.hidden = !model.infilling;
}

function begin() {
  return document.querySelector("input[name=begin]:checked").value;
}

// The form as generate.py's options: only the fields of the chosen way to begin.
function formData() {
  const data = new FormData();
  data.append("model", $("model").value);
  const from = begin();
  if (from === "file" && !$("file").files.length) throw new Error("choose a file to begin from");
  if (from === "seed") data.append("seed", $("seed").value);
  if (from === "chords") data.append("chords", $("chords").value);
  if (from === "file" && $("file").files.length) {
    const use = document.querySelector("input[name=file_use]:checked").value;
    data.append("file", $("file").files[0]);
    data.append("file_use", use);
    if (use === "infill") data.append("infill_bars", $("infill_bars").value);
  }
  for (const select of $("labels").querySelectorAll("select")) {
    if (select.value) data.append("condition", `${select.dataset.label}=${select.value}`);
  }
  const kind = $("length-kind").value;
  if (kind && !$("length-value").value) throw new Error(`give the number of ${$("length-kind").selectedOptions[0].text}`);
  if (kind) data.append(kind, $("length-value").value);
  for (const name of ["guidance", "meter", "bpm", "instruments", "strategy", "temperature", "top_p", "top_k",
                      "num_outputs", "random_seed"]) {
    const field = $(name);
    if (field.value && field.value !== initial(field) && !field.closest("[hidden]")) data.append(name, field.value);
  }
  return data;
}

// A field's value as the page came: left so, it is generate.py's default, and the command need not name it.
function initial(field) {
  if (field.tagName !== "SELECT") return field.defaultValue;
  const option = [...field.options].find((o) => o.defaultSelected) || field.options[0];
  return option ? option.value : "";
}

function showError(message) {
  $("error").textContent = message ? `error: ${message}` : "";
  $("error").hidden = !message;
}

function busy(running) {
  $("generate").disabled = running;
  $("cancel").disabled = !running;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  $("results").replaceChildren();
  $("lines").textContent = "";
  busy(true);
  try {
    const answer = await fetch("/api/jobs", { method: "POST", body: formData() });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error);
    job = body.id;
    $("status").hidden = false;
    poll();
  } catch (error) {
    busy(false);
    showError(error.message);
  }
}

async function poll() {
  const answer = await fetch(`/api/jobs/${job}`);
  const state = await answer.json();
  if (!answer.ok) {
    busy(false);
    showError(state.error);
    return;
  }
  showProgress(state);
  $("lines").textContent = [`$ ${state.command}`, ...state.lines].join("\n");
  if (state.state === "queued" || state.state === "running") {
    polling = setTimeout(poll, 400);
    return;
  }
  busy(false);
  $("progress").value = 1;
  if (state.state === "failed") showError(state.error);
  if (state.state === "cancelled") $("progress-text").textContent = "cancelled";
  if (state.state === "done") showPieces(state.pieces);
}

function showProgress(state) {
  const progress = state.progress;
  let text = state.state === "queued" ? `waiting: ${state.position} requests before this one` : "starting";
  if (progress) {
    const unit = progress.unit === "step" ? "grid steps" : "events";
    if (progress.total) {
      $("progress").value = progress.reached / progress.total;
      text = `${progress.reached} of ${progress.total} ${unit}`;
    } else {
      $("progress").removeAttribute("value");
      text = `${progress.reached} ${unit} written`;
    }
  }
  $("progress-text").textContent = state.state === "done" ? "done" : text;
}

function showPieces(pieces) {
  $("results").replaceChildren(...pieces.map((piece, index) => {
    const card = document.createElement("article");
    const title = document.createElement("h2");
    title.textContent = `Piece ${index + 1}`;
    card.append(title);
    if (piece.wav) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = piece.wav;
      card.append(audio);
    }
    if (piece.png) {
      const roll = document.createElement("img");
      roll.src = piece.png;
      roll.alt = `piano roll of piece ${index + 1}`;
      card.append(roll);
    }
    const downloads = document.createElement("p");
    for (const [kind, label] of [["midi", "MIDI"], ["musicxml", "MusicXML"], ["wav", "WAV"]]) {
      if (!piece[kind]) continue;
      const link = document.createElement("a");
      link.href = piece[kind];
      link.download = piece[kind].split("/").pop();
      link.className = `download-${kind}`;
      link.textContent = `Download ${label}`;
      downloads.append(link, " ");
    }
    card.append(downloads);
    return card;
  }));
}

async function cancel() {
  if (job) await fetch(`/api/jobs/${job}`, { method: "DELETE" });
}

$("model").addEventListener("change", showModel);
$("length-kind").addEventListener("change", () => { $("length-value").hidden = !$("length-kind").value; });
$("request").addEventListener("submit", submit);
$("cancel").addEventListener("click", cancel);
loadModels().catch((error) => showError(`the models cannot be listed: ${error.message}`));
