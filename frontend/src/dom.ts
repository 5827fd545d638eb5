import { ApiError } from "./api";
import { t } from "./i18n";

type Child = Node | string | number | null | undefined | false;

/** Build an element: h("a", { href: "#/" , class: "x" }, "text", child). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((ev: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(name, "");
    else if (value !== false) el.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A message box telling the analyst why a part is empty; never a blank panel. */
export function notice(err: unknown, what: string): HTMLElement {
  if (err instanceof ApiError) {
    if (err.unavailable) {
      return h("div", { class: "notice unavailable" }, `${t("unavailable")}: ${what}`);
    }
    if (err.unauthorised) return h("div", { class: "notice error" }, t("unauthorised"));
    return h("div", { class: "notice error" }, `${t("error")} ${err.status}: ${err.message}`);
  }
  return h("div", { class: "notice error" }, `${t("error")}: ${String(err)}`);
}

export function loading(): HTMLElement {
  return h("div", { class: "loading" }, t("loading"));
}

/** Fill a panel from an async loader, showing progress and any failure in place. */
export async function fill(
  panel: HTMLElement,
  what: string,
  render: () => Promise<Node | Node[]>,
): Promise<void> {
  panel.replaceChildren(loading());
  try {
    const content = await render();
    panel.replaceChildren(...(Array.isArray(content) ? content : [content]));
  } catch (err) {
    panel.replaceChildren(notice(err, what));
  }
}

export function entityLink(id: string, name?: string | null): HTMLElement {
  return h("a", { href: `#/entity/${encodeURIComponent(id)}`, class: "entity-link" }, name ? `${name} (${id})` : id);
}
