// "Where it looks": an occlusion map of the query. Each patch of the network's input is covered
// in turn, and the drop in the best match's score is painted over the input: red where covering
// it costs the match most, that is, the strokes that drove the decision.

const PATCH = 4;

/**
 * Computes the map: `renders` is what the network sees of the query with each of its pens
 * (`engine.pens().length` images of `inputSize²` values, as `queryStrokes` returns them),
 * `support` the best character's embedding. The same patch is covered in every pen's render;
 * `engine` embeds the covered drawings (each through all its views) and scores them. Resolves
 * to per-patch drops, with the input's side `size`.
 */
export async function occlusionMap(engine, renders, support) {
  const size = engine.inputSize();
  const drawing = renders.length;
  const patches = Math.ceil(size / PATCH);
  const images = new Float32Array(drawing * (patches * patches + 1));
  images.set(renders, 0);
  for (let p = 0; p < patches * patches; p++) {
    const covered = Float32Array.from(renders);
    const [py, px] = [Math.floor(p / patches) * PATCH, (p % patches) * PATCH];
    for (let at = 0; at < drawing; at += size * size) {
      for (let y = py; y < Math.min(size, py + PATCH); y++) covered.fill(0, at + y * size + px, at + y * size + Math.min(size, px + PATCH));
    }
    images.set(covered, (p + 1) * drawing);
  }
  const embeddings = await engine.embedInputs(images);
  const scores = await engine.scores(embeddings, support);
  const drops = Array.from(scores.subarray(1), (s) => Math.max(0, scores[0] - s));
  return { size, patches, drops, score: scores[0] };
}

/** Paints the input in grey and the drops in red on a canvas. */
export function paintMap(canvas, input, size, { patches, drops }) {
  const context = canvas.getContext('2d');
  const scale = canvas.width / size;
  const image = context.createImageData(size, size);
  input.forEach((v, i) => {
    const shade = 255 - Math.round(200 * Math.min(1, Math.max(0, v)));
    image.data.set([shade, shade, shade, 255], 4 * i);
  });
  const ink = document.createElement('canvas');
  ink.width = ink.height = size;
  ink.getContext('2d').putImageData(image, 0, 0);
  context.imageSmoothingEnabled = false;
  context.drawImage(ink, 0, 0, canvas.width, canvas.height);
  const top = Math.max(...drops, 1e-6);
  drops.forEach((drop, p) => {
    const alpha = (0.75 * drop) / top;
    if (alpha < 0.02) return;
    context.fillStyle = `rgba(210, 30, 30, ${alpha.toFixed(3)})`;
    const [y, x] = [Math.floor(p / patches) * PATCH * scale, (p % patches) * PATCH * scale];
    context.fillRect(x, y, PATCH * scale, PATCH * scale);
  });
}
