// The analyst workbench: a hash-routed single page over the riskgraph REST API.

import { apiKey, setApiKey } from "./api";
import { h } from "./dom";
import { lang, setLang, t } from "./i18n";
import { renderAlerts } from "./views/alerts";
import { renderEntity } from "./views/entity";
import { renderRing, renderRings } from "./views/rings";
import { renderSearch } from "./views/search";

const AS_OF_STORAGE = "riskgraph.asOf";

export function asOf(): string | null {
  return sessionStorage.getItem(AS_OF_STORAGE) || null;
}

function header(): HTMLElement {
  const keyInput = h("input", {
    type: "password",
    id: "api-key",
    placeholder: t("apiKey"),
    autocomplete: "off",
    value: apiKey(),
  });
  const keyState = h("span", { class: "key-state" }, apiKey() ? t("keySaved") : "");
  const saveKey = (): void => {
    setApiKey(keyInput.value.trim());
    route();
  };
  keyInput.addEventListener("keydown", (ev) => {
    if ((ev as KeyboardEvent).key === "Enter") saveKey();
  });
  const dateInput = h("input", { type: "date", id: "as-of", title: t("asOfHelp"), value: asOf() ?? "" });
  dateInput.addEventListener("change", () => {
    if (dateInput.value) sessionStorage.setItem(AS_OF_STORAGE, dateInput.value);
    else sessionStorage.removeItem(AS_OF_STORAGE);
    route();
  });
  const toggle = h(
    "button",
    {
      id: "lang-toggle",
      type: "button",
      onclick: () => {
        setLang(lang() === "zh" ? "en" : "zh");
        route();
      },
    },
    lang() === "zh" ? "EN" : "中文",
  );
  return h(
    "header",
    { class: "topbar" },
    h("a", { href: "#/", class: "brand" }, t("appTitle")),
    h(
      "nav",
      {},
      h("a", { href: "#/" }, t("search")),
      h("a", { href: "#/rings" }, t("rings")),
      h("a", { href: "#/alerts" }, t("alerts")),
    ),
    h("label", { class: "as-of", title: t("asOfHelp") }, `${t("asOf")} `, dateInput),
    h(
      "form",
      {
        class: "login",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          saveKey();
        },
      },
      keyInput,
      h("button", { type: "submit" }, t("signIn")),
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            keyInput.value = "";
            saveKey();
          },
        },
        t("signOut"),
      ),
      keyState,
    ),
    toggle,
  );
}

function route(): void {
  const app = document.getElementById("app");
  if (!app) return;
  document.title = t("appTitle");
  const main = h("main", { id: "view" });
  app.replaceChildren(header(), main);
  const [, page = "", ...rest] = location.hash.replace(/^#/, "").split("/");
  const arg = decodeURIComponent(rest.join("/"));
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  switch (page.split("?")[0]) {
    case "entity":
      void renderEntity(main, arg.split("?")[0], asOf());
      break;
    case "rings":
      void renderRings(main, params);
      break;
    case "ring":
      void renderRing(main, arg.split("?")[0]);
      break;
    case "alerts":
      void renderAlerts(main);
      break;
    default:
      renderSearch(main, params.get("q") ?? "");
  }
}

setLang(lang());
window.addEventListener("hashchange", route);
route();
