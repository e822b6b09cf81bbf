// The few DOM helpers every view uses.

/** The element with this id (the page's markup defines each one). */
export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** A new element with attributes and, optionally, its text. */
export function el(tag: string, attrs: Record<string, string> = {}, text = ""): HTMLElement {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text) n.textContent = text;
  return n;
}
