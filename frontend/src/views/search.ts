import { type SearchResult, getJson } from "../api";
import { h, notice } from "../dom";
import { t, term } from "../i18n";

let pending = 0;

export function renderSearch(main: HTMLElement, initial: string): void {
  const input = h("input", {
    type: "search",
    id: "search",
    placeholder: t("searchPlaceholder"),
    autofocus: true,
    autocomplete: "off",
    value: initial,
  });
  const results = h("ul", { id: "search-results", class: "results" });
  const hint = h("p", { class: "hint" }, t("searchHint"));
  let timer: number | undefined;
  const run = async (): Promise<void> => {
    const q = input.value.trim();
    history.replaceState(null, "", q ? `#/?q=${encodeURIComponent(q)}` : "#/");
    if (!q) {
      results.replaceChildren();
      return;
    }
    const ticket = ++pending;
    try {
      const body = await getJson<SearchResult>("/v1/search", { q, limit: 20 });
      if (ticket !== pending) return; // a newer keystroke already answered
      results.replaceChildren(
        ...(body.results.length
          ? body.results.map((e) =>
              h(
                "li",
                {},
                h(
                  "a",
                  { href: `#/entity/${encodeURIComponent(e.id)}`, class: "result" },
                  h("span", { class: `badge ${e.label}` }, term("label", e.label)),
                  h("strong", {}, e.name ?? e.id),
                  h("span", { class: "muted" }, ` ${e.id}`),
                  h(
                    "span",
                    { class: "muted small" },
                    ` ${String(e.properties.uscc ?? e.properties.id_number ?? "")}`,
                  ),
                ),
              ),
            )
          : [h("li", { class: "muted" }, t("noResults"))]),
      );
    } catch (err) {
      if (ticket === pending) results.replaceChildren(h("li", {}, notice(err, "GET /v1/search")));
    }
  };
  input.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void run(), 120);
  });
  main.replaceChildren(h("section", { class: "search-page" }, input, hint, results));
  input.focus();
  if (initial) void run();
}
