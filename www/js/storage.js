// The support set (labels and strokes) kept in this browser, so a reload keeps the drawings.

const KEY = 'oneshot.support-set';

/** The saved support set as exportSet's JSON text, or null. */
export function loadSaved() {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null; // storage disabled (private mode, a sandboxed frame)
  }
}

/** Saves the support set (exportSet's JSON text); quietly does nothing where storage is off. */
export function save(text) {
  try {
    localStorage.setItem(KEY, text);
  } catch {
    // Full or disabled: the page works the same, it just forgets on reload.
  }
}

/** Forgets the saved support set. */
export function forget() {
  try {
    localStorage.removeItem(KEY);
  } catch {}
}
