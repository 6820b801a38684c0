// The two DOM helpers the page's view modules share. Browser only (used from functions, never
// at import time).

export const $ = (id) => document.getElementById(id);

// An element with properties ('class', 'text', 'on…' listeners, other attributes; null and
// false are left out) and children (null children are left out).
export const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
};
