// Export and import of a support set (labels and strokes) as a JSON file.

const FORMAT = 'oneshot-support-set';
const VERSION = 1;

/** Serialises labels and strokes. */
export function exportSet(slots) {
  return JSON.stringify({ format: FORMAT, version: VERSION, slots: slots.map((s) => ({ label: s.label, strokes: s.strokes })) });
}

/** Parses a file written by exportSet; throws an Error saying what is wrong otherwise. */
export function importSet(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error('the file is not JSON');
  }
  if (data?.format !== FORMAT || data.version !== VERSION || !Array.isArray(data.slots)) {
    throw new Error('the file is not a oneshot support set');
  }
  if (data.slots.length === 0 || data.slots.length > 20) throw new Error('a support set has 1 to 20 characters');
  const isPoint = (p) => Array.isArray(p) && p.length === 2 && p.every((v) => Number.isFinite(v) && v >= 0 && v <= 1);
  return data.slots.map((slot, i) => {
    const strokes = slot?.strokes;
    if (!Array.isArray(strokes) || !strokes.every((s) => Array.isArray(s) && s.length > 0 && s.every(isPoint))) {
      throw new Error(`character ${i + 1} has malformed strokes`);
    }
    return { label: String(slot.label ?? `#${i + 1}`).slice(0, 40), strokes };
  });
}

/** Offers text as a file download. */
export function download(name, text, type = 'application/json') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
