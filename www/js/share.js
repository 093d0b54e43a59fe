// Export and import of a support set (labels and the strokes of every drawing) as a JSON file.

const FORMAT = 'oneshot-support-set';
/** Version 2 keeps several drawings per character; version 1 files (one drawing) still load. */
const VERSION = 2;
const MAX_DRAWINGS = 6;
/** Sane limits: far beyond what a hand draws, far below what would stall the page. */
export const LIMITS = { bytes: 8 << 20, characters: 20, strokes: 500, points: 20_000 };

/** Serialises labels and drawings (each a list of strokes). */
export function exportSet(slots) {
  return JSON.stringify({ format: FORMAT, version: VERSION, slots: slots.map((s) => ({ label: s.label, drawings: s.drawings })) });
}

/** Parses a file written by exportSet; throws an Error saying what is wrong otherwise. */
export function importSet(text) {
  if (text.length > LIMITS.bytes) throw new Error(`the file is larger than ${LIMITS.bytes >> 20} MB`);
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error('the file is not JSON');
  }
  if (data?.format !== FORMAT || ![1, VERSION].includes(data.version) || !Array.isArray(data.slots)) {
    throw new Error('the file is not a oneshot support set');
  }
  if (data.slots.length === 0 || data.slots.length > LIMITS.characters) throw new Error(`a support set has 1 to ${LIMITS.characters} characters`);
  const isPoint = (p) => Array.isArray(p) && p.length === 2 && p.every((v) => Number.isFinite(v) && v >= 0 && v <= 1);
  const isStrokes = (strokes) => Array.isArray(strokes) && strokes.every((s) => Array.isArray(s) && s.length > 0 && s.every(isPoint));
  return data.slots.map((slot, i) => {
    const drawings = data.version === 1 ? [slot?.strokes] : slot?.drawings;
    if (!Array.isArray(drawings) || drawings.length === 0 || drawings.length > MAX_DRAWINGS || !drawings.every(isStrokes)) {
      throw new Error(`character ${i + 1} has malformed drawings`);
    }
    for (const strokes of drawings) {
      const points = strokes.reduce((n, s) => n + s.length, 0);
      if (strokes.length > LIMITS.strokes || points > LIMITS.points) {
        throw new Error(`character ${i + 1} has a drawing of ${strokes.length} strokes and ${points} points (at most ${LIMITS.strokes} and ${LIMITS.points})`);
      }
    }
    return { label: String(slot.label ?? `#${i + 1}`).slice(0, 40), drawings };
  });
}

/** Offers text or bytes as a file download. */
export function download(name, content, type = 'application/json') {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
