// Renders the similarity of the query to every support drawing as bars, best first.

/**
 * @param {HTMLOListElement} list
 * @param {{label: string, score: number}[]} entries
 */
export function renderScores(list, entries) {
  const sorted = entries.map((e, index) => ({ ...e, index })).sort((a, b) => b.score - a.score);
  list.replaceChildren(
    ...sorted.map((entry, rank) => {
      const item = document.createElement('li');
      item.className = rank === 0 ? 'best' : '';
      item.dataset.slot = String(entry.index);
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = entry.label;
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('span');
      fill.style.width = `${(entry.score * 100).toFixed(1)}%`;
      bar.append(fill);
      const value = document.createElement('span');
      value.className = 'value';
      value.textContent = percent(entry.score);
      item.append(label, bar, value);
      item.setAttribute('aria-label', `${entry.label}: ${percent(entry.score)}`);
      return item;
    }),
  );
  return sorted[0];
}

/** A probability as a percentage with sensible precision at both ends. */
export function percent(p) {
  const value = p * 100;
  return value >= 99.95 || value < 0.05 ? `${value.toFixed(0)} %` : `${value.toFixed(1)} %`;
}
