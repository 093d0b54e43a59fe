// A drawing surface: pointer input (mouse, touch, pen), strokes kept as data (for undo, export,
// redraw at any size, and for the network: the engine paints them itself with a pen relative to
// the drawing's size, so the screen's pixels, the pen and the drawing's size do not matter).

/** Stroke width on screen as a fraction of the pad: about Omniglot's pen on its canvas. */
export const STROKE_WIDTH = 0.045;

/** Draws strokes (arrays of [x, y] in 0..1) onto a 2D context of the given pixel size. */
export function paintStrokes(context, strokes, size) {
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, size, size);
  context.strokeStyle = '#000000';
  context.fillStyle = '#000000';
  context.lineCap = 'round';
  context.lineJoin = 'round';
  context.lineWidth = STROKE_WIDTH * size;
  for (const stroke of strokes) {
    if (stroke.length === 1) {
      // A tap leaves a round dot.
      const [x, y] = stroke[0];
      context.beginPath();
      context.arc(x * size, y * size, (STROKE_WIDTH * size) / 2, 0, 2 * Math.PI);
      context.fill();
      continue;
    }
    context.beginPath();
    stroke.forEach(([x, y], i) => (i === 0 ? context.moveTo(x * size, y * size) : context.lineTo(x * size, y * size)));
    context.stroke();
  }
}

export class DrawingPad {
  /**
   * @param {HTMLElement} host element to fill
   * @param {{label?: string, onChange?: (pad: DrawingPad, final: boolean) => void}} options
   */
  constructor(host, { label = 'drawing', onChange = () => {} } = {}) {
    this.strokes = [];
    this.onChange = onChange;
    this.root = document.createElement('div');
    this.root.className = 'pad';
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute('aria-label', `${label}: draw with a mouse, a pen or a finger; U or Ctrl+Z undoes, C or Escape clears`);
    // A tab stop with a purpose: the keys below work while the box has focus.
    this.canvas.tabIndex = 0;
    const tools = document.createElement('div');
    tools.className = 'tools';
    this.undoButton = button('Undo', () => this.undo());
    this.clearButton = button('Clear', () => this.clear());
    tools.append(this.undoButton, this.clearButton);
    this.message = document.createElement('p');
    this.message.className = 'error';
    // What the network sees of the drawing: its input square, drawn small.
    this.view = document.createElement('canvas');
    this.view.className = 'view';
    this.view.width = this.view.height = 32;
    this.view.title = 'What the network sees';
    this.view.setAttribute('role', 'img');
    this.view.setAttribute('aria-label', `what the network sees of ${label}`);
    // Hidden by visibility, not display: its space stays, so nothing below moves when it appears.
    this.view.style.visibility = 'hidden';
    tools.append(this.view);
    this.root.append(this.canvas, tools, this.message);
    host.append(this.root);

    this.#listen();
    // The canvas's CSS width, kept from the observer: reading clientWidth on every redraw would
    // force a layout of the whole page (the scores just rendered) before each new query.
    this.cssWidth = 0;
    new ResizeObserver(([entry]) => {
      this.cssWidth = entry.contentRect.width;
      this.#redraw();
    }).observe(this.canvas);
    this.#redraw();
  }

  /** True when nothing is drawn. */
  get isEmpty() {
    return this.strokes.length === 0;
  }

  /**
   * The strokes as the engine takes them: `points` holds x, y pairs (0..1 of the pad) back to
   * back, `lengths[i]` is the number of points of stroke i.
   */
  strokeData() {
    const lengths = Uint32Array.from(this.strokes, (stroke) => stroke.length);
    const points = new Float32Array(2 * lengths.reduce((sum, n) => sum + n, 0));
    let at = 0;
    for (const stroke of this.strokes) {
      for (const [x, y] of stroke) {
        points[at++] = x;
        points[at++] = y;
      }
    }
    return { points, lengths };
  }

  /** Replaces the drawing (e.g. from an imported file). */
  setStrokes(strokes) {
    this.strokes = strokes.map((s) => s.map(([x, y]) => [x, y]));
    this.#redraw();
    this.#changed(true);
  }

  undo() {
    if (this.strokes.pop()) {
      this.#redraw();
      this.#changed(true);
    }
  }

  clear() {
    if (this.strokes.length) {
      this.strokes = [];
      this.#redraw();
      this.#changed(true);
    }
  }

  /**
   * Shows the network's input for this drawing (`size²` values, 1 = ink), or hides it for
   * null.
   */
  showInput(values, size) {
    this.view.style.visibility = values ? 'visible' : 'hidden';
    if (!values) return;
    if (this.view.width !== size) this.view.width = this.view.height = size;
    const context = this.view.getContext('2d');
    const image = context.createImageData(size, size);
    values.forEach((v, i) => {
      const shade = 255 - Math.round(255 * Math.min(1, Math.max(0, v)));
      image.data.set([shade, shade, shade, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
  }

  /** Shows (or, with an empty text, hides) a message under the pad. */
  setMessage(text) {
    this.message.textContent = text;
  }

  #changed(final) {
    this.undoButton.disabled = this.clearButton.disabled = this.isEmpty;
    this.onChange(this, final);
  }

  #listen() {
    // Shortcuts only while this box has focus, so typing elsewhere is never taken.
    this.canvas.addEventListener('keydown', (event) => {
      const key = event.key.toLowerCase();
      if ((key === 'z' && (event.ctrlKey || event.metaKey)) || (key === 'u' && !event.ctrlKey && !event.metaKey)) {
        event.preventDefault();
        this.undo();
      } else if (key === 'escape' || (key === 'c' && !event.ctrlKey && !event.metaKey)) {
        event.preventDefault();
        this.clear();
      }
    });
    let active = null;
    const point = (event) => {
      const rect = this.canvas.getBoundingClientRect();
      const clamp = (v) => Math.min(1, Math.max(0, v));
      return [clamp((event.clientX - rect.left) / rect.width), clamp((event.clientY - rect.top) / rect.height)];
    };
    this.canvas.addEventListener('pointerdown', (event) => {
      if (event.button !== 0 && event.pointerType === 'mouse') return;
      event.preventDefault();
      this.canvas.focus({ preventScroll: true });
      this.canvas.setPointerCapture(event.pointerId);
      DrawingPad.active?.root.classList.remove('active');
      DrawingPad.active = this;
      this.root.classList.add('active');
      this.lastPointerType = event.pointerType;
      active = [point(event)];
      this.strokes.push(active);
      this.#redraw();
    });
    this.canvas.addEventListener('pointermove', (event) => {
      if (!active) return;
      // Coalesced events keep fast pen strokes smooth.
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
      for (const e of events.length ? events : [event]) active.push(point(e));
      this.#redraw();
      this.#changed(false);
    });
    const end = (event) => {
      if (!active) return;
      // Moves the browser had not delivered yet end where the pointer was lifted.
      const last = active.at(-1);
      const lifted = point(event);
      if (event.type === 'pointerup' && (lifted[0] !== last[0] || lifted[1] !== last[1])) active.push(lifted);
      active = null;
      this.#redraw();
      this.#changed(true);
    };
    this.canvas.addEventListener('pointerup', end);
    this.canvas.addEventListener('pointercancel', end);
  }

  #redraw() {
    const ratio = window.devicePixelRatio || 1;
    const size = Math.max(1, Math.round((this.cssWidth || this.canvas.clientWidth) * ratio));
    if (this.canvas.width !== size) this.canvas.width = this.canvas.height = size;
    paintStrokes(this.canvas.getContext('2d'), this.strokes, size);
    this.undoButton.disabled = this.clearButton.disabled = this.isEmpty;
  }
}

/** The pad the user last drew on (highlighted). */
DrawingPad.active = null;

function button(text, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.addEventListener('click', action);
  return b;
}
