import { getJson } from "../api";
import { entityLink, fill, h } from "../dom";
import { money, t } from "../i18n";

type Json = Record<string, unknown>;

interface LargeExposureRow {
  kind: string;
  id: string;
  name: string | null;
  members: number;
  exposure: number;
  breached: string[];
}

async function ringAlerts(): Promise<HTMLElement> {
  const body = await getJson<unknown>("/v1/alerts");
  const alerts = (Array.isArray(body) ? body : ((body as Json).alerts ?? [])) as Json[];
  if (!alerts.length) return h("p", { class: "muted" }, t("noAlerts"));
  return h(
    "table",
    { class: "alerts" },
    h("tr", {}, h("th", {}, t("kind")), h("th", {}, t("run")), h("th", {}, t("message")), h("th", {}, "")),
    ...alerts.map((a) => {
      const ring = a.ring_id as string | undefined;
      return h(
        "tr",
        {},
        h("td", {}, String(a.kind ?? a.type ?? "")),
        h("td", {}, String(a.run_id ?? a.run ?? a.created_at ?? "")),
        h("td", {}, String(a.message ?? a.text ?? "")),
        h("td", {}, ring ? h("a", { href: `#/ring/${encodeURIComponent(ring)}` }, `${t("ring")} ${ring}`) : ""),
      );
    }),
  );
}

/** Clients and groups over a limit, from the large-exposure report. */
async function limitBreaches(): Promise<HTMLElement> {
  const body = await getJson<{ rows: LargeExposureRow[] }>("/v1/reports/large-exposures");
  const rows = body.rows.filter((r) => r.breached.length);
  if (!rows.length) return h("p", { class: "muted" }, t("noAlerts"));
  return h(
    "table",
    { class: "alerts", id: "limit-breaches" },
    h("tr", {}, h("th", {}, t("kind")), h("th", {}, ""), h("th", { class: "num" }, t("exposure")), h("th", {}, t("limit"))),
    ...rows.map((r) =>
      h(
        "tr",
        { class: "breached" },
        h("td", {}, r.kind === "group" ? `${t("group")} (${r.members})` : r.kind),
        // A group's id is "group:<lowest member id>"; its page is that member's.
        h("td", {}, r.kind === "group" ? entityLink(r.id.replace(/^group:/, ""), r.name ?? r.id) : entityLink(r.id, r.name)),
        h("td", { class: "num" }, money(r.exposure)),
        h("td", {}, r.breached.join(", ")),
      ),
    ),
  );
}

export async function renderAlerts(main: HTMLElement): Promise<void> {
  const rings = h("section", { class: "panel", id: "alerts" });
  const limits = h("section", { class: "panel", id: "limit-alerts" });
  main.replaceChildren(h("h1", {}, t("alerts")), h("h2", {}, t("ringAlerts")), rings, h("h2", {}, t("limitBreaches")), limits);
  await Promise.all([fill(rings, "GET /v1/alerts", ringAlerts), fill(limits, "GET /v1/reports/large-exposures", limitBreaches)]);
}
