// The live loss curve of a fine-tuning run, drawn on a canvas at the screen's resolution.

/**
 * Draws `losses` (one per step) against steps 1..`total`, with the y axis from 0 to the largest
 * loss seen so far.
 */
export function drawLossCurve(canvas, losses, total) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  const context = canvas.getContext('2d');
  const style = getComputedStyle(canvas);
  context.clearRect(0, 0, width, height);

  const pad = { left: 34 * ratio, right: 8 * ratio, top: 8 * ratio, bottom: 18 * ratio };
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const top = Math.max(1e-6, ...losses) * 1.05;
  const x = (step) => pad.left + (total > 1 ? ((step - 1) / (total - 1)) * plotWidth : plotWidth / 2);
  const y = (loss) => pad.top + plotHeight * (1 - loss / top);

  context.font = `${11 * ratio}px system-ui, sans-serif`;
  context.fillStyle = style.getPropertyValue('--muted').trim() || '#666';
  context.strokeStyle = style.getPropertyValue('--line').trim() || '#ddd';
  context.lineWidth = ratio;
  context.beginPath();
  context.moveTo(pad.left, pad.top);
  context.lineTo(pad.left, pad.top + plotHeight);
  context.lineTo(pad.left + plotWidth, pad.top + plotHeight);
  context.stroke();
  context.textAlign = 'right';
  context.textBaseline = 'middle';
  context.fillText(top.toFixed(2), pad.left - 4 * ratio, pad.top + 5 * ratio);
  context.fillText('0', pad.left - 4 * ratio, pad.top + plotHeight);
  context.textAlign = 'center';
  context.textBaseline = 'top';
  context.fillText(`step ${total}`, pad.left + plotWidth - 20 * ratio, pad.top + plotHeight + 4 * ratio);
  context.textAlign = 'left';
  context.fillText('loss of each step', pad.left + 6 * ratio, pad.top);
  if (losses.length === 0) return;

  context.strokeStyle = style.getPropertyValue('--accent').trim() || '#2563eb';
  context.fillStyle = context.strokeStyle;
  context.lineWidth = 2 * ratio;
  context.lineJoin = 'round';
  context.beginPath();
  losses.forEach((loss, i) => (i === 0 ? context.moveTo(x(1), y(loss)) : context.lineTo(x(i + 1), y(loss))));
  context.stroke();
  context.beginPath();
  context.arc(x(losses.length), y(losses.at(-1)), 3 * ratio, 0, 2 * Math.PI);
  context.fill();
}
