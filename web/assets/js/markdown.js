// A small Markdown renderer for the hub's own reports: headings, paragraphs,
// lists, GFM tables, fenced code, block quotes, rules, and inline code,
// bold, italics and links. It builds DOM nodes directly (never HTML
// strings), so whatever text a report carries is shown as text. Links are
// kept only for http(s) and in-page targets.

import { h } from './dom.js';

const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*|__[^_]+__)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(\[[^\]]+\]\([^)\s]+\))/;

function safeHref(href) {
  return /^(https?:\/\/|#|\/)/i.test(href) ? href : null;
}

/** Inline markup of one line of text → array of nodes. */
export function inline(text) {
  const out = [];
  let rest = text;
  while (rest) {
    const m = INLINE.exec(rest);
    if (!m) {
      out.push(rest);
      break;
    }
    if (m.index > 0) out.push(rest.slice(0, m.index));
    const tok = m[0];
    if (m[1]) out.push(h('code', null, tok.slice(1, -1)));
    else if (m[2]) out.push(h('strong', null, ...inline(tok.slice(2, -2))));
    else if (m[3]) out.push(h('em', null, ...inline(tok.slice(1, -1))));
    else {
      const [, label, href] = /^\[([^\]]+)\]\(([^)\s]+)\)$/.exec(tok);
      const safe = safeHref(href);
      out.push(safe ? h('a', { href: safe, rel: 'noopener noreferrer' }, label) : label);
    }
    rest = rest.slice(m.index + tok.length);
  }
  return out;
}

function splitRow(line) {
  let t = line.trim();
  if (t.startsWith('|')) t = t.slice(1);
  if (t.endsWith('|')) t = t.slice(0, -1);
  return t.split('|').map((c) => c.trim());
}

const isTableRule = (line) => /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line);
const LIST_ITEM = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/;

/** Markdown text → a DocumentFragment. */
export function renderMarkdown(text) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  const frag = document.createDocumentFragment();
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = /^\s*(```|~~~)/.exec(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1;
      frag.append(h('pre', null, h('code', null, body.join('\n'))));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      // Report headings sit below the page's own h1/h2.
      const level = Math.min(6, heading[1].length + 1);
      frag.append(h(`h${level}`, null, ...inline(heading[2])));
      i += 1;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      frag.append(h('hr'));
      i += 1;
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && isTableRule(lines[i + 1])) {
      const head = splitRow(line);
      // `---:` right-aligns a column, `:---:` centres it.
      const align = splitRow(lines[i + 1]).map((c) => (c.endsWith(':') ? (c.startsWith(':') ? 'center' : 'num') : null));
      i += 2;
      const rows = [];
      while (i < lines.length && lines[i].includes('|') && lines[i].trim()) rows.push(splitRow(lines[i++]));
      frag.append(
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            null,
            // A table with an empty header row (key/value tables) gets none.
            head.some((c) => c) ? h('thead', null, h('tr', null, head.map((c, k) => h('th', { scope: 'col', class: align[k] }, ...inline(c))))) : null,
            h('tbody', null, rows.map((r) => h('tr', null, head.map((_, k) => h('td', { class: align[k] }, ...inline(r[k] || '')))))),
          ),
        ),
      );
      continue;
    }
    if (/^\s*>/.test(line)) {
      const body = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ''));
      frag.append(h('blockquote', null, renderMarkdown(body.join('\n'))));
      continue;
    }
    if (LIST_ITEM.test(line)) {
      frag.append(renderList(lines, i, (next) => (i = next)));
      continue;
    }
    const para = [];
    while (
      i < lines.length && lines[i].trim() && !LIST_ITEM.test(lines[i]) && !/^(#{1,6})\s/.test(lines[i])
      && !/^\s*(```|~~~|>)/.test(lines[i])
    ) {
      para.push(lines[i++].trim());
    }
    frag.append(h('p', null, ...inline(para.join(' '))));
  }
  return frag;
}

/** A (possibly nested) list starting at `start`; reports where it ended. */
function renderList(lines, start, setNext) {
  const first = LIST_ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = h(ordered ? 'ol' : 'ul');
  let i = start;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!m || m[1].length < indent) break;
    if (m[1].length > indent) {
      const last = list.lastElementChild;
      const nested = renderList(lines, i, (next) => (i = next));
      if (last) last.append(nested);
      else list.append(h('li', null, nested));
      continue;
    }
    list.append(h('li', null, ...inline(m[3])));
    i += 1;
    // Continuation lines of the same item.
    while (i < lines.length && lines[i].trim() && !LIST_ITEM.test(lines[i]) && /^\s{2,}/.test(lines[i])) {
      list.lastElementChild.append(' ', ...inline(lines[i++].trim()));
    }
  }
  setNext(i);
  return list;
}
