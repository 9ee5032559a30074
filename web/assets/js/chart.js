// A small live chart: one series of per-second values as an SVG area, with
// the current value and the peak written out (the text carries the meaning;
// the drawing is a picture of it, labelled for screen readers).

import { h, s } from './dom.js';

const W = 300;
const H = 64;

/**
 * `values`: numbers (null = no data) oldest first, one per second (or per
 * `span`'s unit: `span` names the time they cover, default "N s").
 * Returns a <figure>.
 */
export function sparkline({ title, values, format, unit, span, id }) {
  const covered = span || `${values.length} s`;
  const known = values.filter((v) => v !== null && Number.isFinite(v));
  const peak = known.length ? Math.max(...known) : 0;
  const current = [...values].reverse().find((v) => v !== null && Number.isFinite(v));
  const top = peak > 0 ? peak * 1.15 : 1;
  const step = values.length > 1 ? W / (values.length - 1) : W;
  const y = (v) => (H - 2 - ((v || 0) / top) * (H - 6)).toFixed(1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`);
  const line = points.join(' ');
  const area = `0,${H} ${line} ${W},${H}`;
  const label = `${title}: now ${format(current ?? 0)}${unit ? ` ${unit}` : ''}, peak ${format(peak)} over the last ${covered}`;
  return h(
    'figure',
    { class: 'chart', id },
    h(
      'figcaption',
      null,
      h('span', { class: 'chart-title' }, title),
      h('span', { class: 'chart-value' }, format(current ?? 0), unit ? h('small', null, ` ${unit}`) : null),
    ),
    s(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label, class: 'chart-svg' },
      s('line', { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: 'chart-axis' }),
      s('polygon', { points: area, class: 'chart-area' }),
      s('polyline', { points: line, class: 'chart-line' }),
    ),
    h('p', { class: 'chart-foot muted' }, `peak ${format(peak)}${unit ? ` ${unit}` : ''} · last ${covered}`),
  );
}
