// The drawing demo's page: drawing pads, and a request to /predict after every stroke.
'use strict';

// Omniglot's drawings are 105x105 pixels of black ink on white paper, and a pad is drawn alike:
// the server shrinks both the same way. A pen of 5.6 pixels, once its grey edges are made ink
// or paper, leaves strokes as wide as Omniglot's (about 4.4 pixels; tests/test_demo_page.py).
const PAD_SIZE = 105;
const PEN_WIDTH = 5.6;

const demo = {
  classPads: [],
  queryPad: null,
  latest: 0,  // the number of the latest request: an older answer is not shown
};

function makePad(parent, label, onStroke) {
  const pad = {inked: false};
  pad.box = document.createElement('div');
  pad.box.className = 'pad';
  pad.canvas = document.createElement('canvas');
  pad.canvas.width = pad.canvas.height = PAD_SIZE;
  pad.canvas.setAttribute('aria-label', label);
  const caption = document.createElement('div');
  caption.textContent = label;
  const clear = document.createElement('button');
  clear.type = 'button';
  clear.textContent = 'Clear';
  clear.addEventListener('click', () => { clearPad(pad); onStroke(); });
  pad.bar = document.createElement('div');
  pad.bar.className = 'bar';
  pad.bar.appendChild(document.createElement('div'));
  pad.probability = document.createElement('div');
  pad.probability.className = 'probability';
  pad.box.append(caption, pad.canvas, clear, pad.bar, pad.probability);
  parent.appendChild(pad.box);
  clearPad(pad);
  listenForStrokes(pad, onStroke);
  return pad;
}

function listenForStrokes(pad, onStroke) {
  const context = pad.canvas.getContext('2d');
  let last = null;
  const point = (event) => {
    const box = pad.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * PAD_SIZE / box.width,
            (event.clientY - box.top) * PAD_SIZE / box.height];
  };
  const line = (from, to) => {
    context.beginPath();
    context.moveTo(from[0], from[1]);
    context.lineTo(to[0], to[1]);
    context.stroke();
  };
  pad.canvas.addEventListener('pointerdown', (event) => {
    pad.canvas.setPointerCapture(event.pointerId);
    context.strokeStyle = 'black';
    context.lineWidth = PEN_WIDTH;
    context.lineCap = context.lineJoin = 'round';
    last = point(event);
    line(last, last);
  });
  pad.canvas.addEventListener('pointermove', (event) => {
    if (last === null) return;
    const next = point(event);
    line(last, next);
    last = next;
  });
  const end = () => {
    if (last === null) return;
    last = null;
    pad.inked = true;
    onStroke();
  };
  pad.canvas.addEventListener('pointerup', end);
  pad.canvas.addEventListener('pointercancel', end);
}

function clearPad(pad) {
  const context = pad.canvas.getContext('2d');
  context.fillStyle = 'white';
  context.fillRect(0, 0, PAD_SIZE, PAD_SIZE);
  pad.inked = false;
}

// A canvas as a PNG data URL of pure black and white, as Omniglot's 1-bit images are: the
// browser's anti-aliased grey edges become ink or paper.
function exportDrawing(canvas) {
  const copy = document.createElement('canvas');
  copy.width = canvas.width;
  copy.height = canvas.height;
  const context = copy.getContext('2d');
  context.drawImage(canvas, 0, 0);
  const image = context.getImageData(0, 0, copy.width, copy.height);
  const pixels = image.data;
  for (let i = 0; i < pixels.length; i += 4) {
    const grey = 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
    const value = grey < 128 ? 0 : 255;
    pixels[i] = pixels[i + 1] = pixels[i + 2] = value;
    pixels[i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return copy.toDataURL('image/png');
}

function showStatus(text, isError) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.className = isError ? 'error' : '';
}

function showProbabilities(probabilities) {
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  demo.classPads.forEach((pad, index) => {
    const p = probabilities ? probabilities[index] : null;
    pad.box.classList.toggle('winner', index === best);
    pad.bar.firstChild.style.width = p === null ? '0' : (100 * p).toFixed(1) + '%';
    pad.probability.textContent = p === null ? '' : (100 * p).toFixed(1) + '%';
  });
}

async function predict() {
  const number = ++demo.latest;
  const missing = demo.classPads.findIndex((pad) => !pad.inked);
  if (missing >= 0 || !demo.queryPad.inked) {
    showProbabilities(null);
    showStatus(missing >= 0 ? `Draw an example of class ${missing + 1}.`
                            : 'Draw a query to classify.', false);
    return;
  }
  showStatus('Fine-tuning on your drawings\u2026', false);
  const body = JSON.stringify({
    support: demo.classPads.map((pad) => [exportDrawing(pad.canvas)]),
    query: exportDrawing(demo.queryPad.canvas),
  });
  let answer;
  let ok;
  try {
    const response = await fetch('predict', {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body});
    ok = response.ok;
    answer = await response.json();
  } catch (error) {
    ok = false;
    answer = {error: 'no answer from the demo server (' + error.message + '); is it running?'};
  }
  if (number !== demo.latest) return;
  if (!ok) {
    showProbabilities(null);
    showStatus(answer.error, true);
    return;
  }
  showProbabilities(answer.probabilities);
  showStatus(`The query looks most like class ${answer.predicted + 1}.`, false);
}

function buildPads(ways) {
  const classes = document.getElementById('classes');
  classes.replaceChildren();
  demo.classPads = [];
  for (let i = 0; i < ways; i++) {
    demo.classPads.push(makePad(classes, `Class ${i + 1}`, predict));
  }
  predict();
}

async function start() {
  const info = await (await fetch('info')).json();
  document.getElementById('model').textContent = 'Model: ' + info.model;
  const select = document.getElementById('ways');
  for (let ways = 2; ways <= info.ways; ways++) {
    select.add(new Option(String(ways), String(ways), false, ways === info.ways));
  }
  select.addEventListener('change', () => buildPads(Number(select.value)));
  demo.queryPad = makePad(document.getElementById('query'), 'Query', predict);
  demo.queryPad.bar.remove();
  buildPads(info.ways);
}

window.demo = Object.assign(demo, {exportDrawing, predict});
start();
