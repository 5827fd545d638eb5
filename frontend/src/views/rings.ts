// Rings and their history. The ring endpoints come from ring detection; field names are
// read leniently (ring_id or id, members as ids or objects) so a partial answer still shows.

import { type Entity, type GraphEdge, type GraphNode, type Neighbourhood, getJson } from "../api";
import { entityLink, fill, h, notice } from "../dom";
import { drawGraph } from "../graph";
import { money, t } from "../i18n";

type Json = Record<string, unknown>;

export interface RingView {
  id: string;
  region: string | null;
  score: number | null;
  members: { id: string; name: string | null }[];
  raw: Json;
}

function members(value: unknown): RingView["members"] {
  if (!Array.isArray(value)) return [];
  return value.map((m) =>
    typeof m === "string"
      ? { id: m, name: null }
      : { id: String((m as Json).id ?? (m as Json).entity_id ?? ""), name: ((m as Json).name as string | undefined) ?? null },
  );
}

export function ringOf(raw: Json): RingView {
  const score = raw.score;
  return {
    id: String(raw.ring_id ?? raw.id ?? ""),
    region: (raw.region as string | null | undefined) ?? null,
    score: typeof score === "number" ? score : null,
    members: members(raw.members),
    raw,
  };
}

function listOf(body: unknown, key: string): Json[] {
  if (Array.isArray(body)) return body as Json[];
  const inner = (body as Json)[key];
  return Array.isArray(inner) ? (inner as Json[]) : [];
}

export async function renderRings(main: HTMLElement, params: URLSearchParams): Promise<void> {
  const region = h("input", { id: "ring-region", placeholder: "330100", value: params.get("region") ?? "" });
  const minScore = h("input", { id: "ring-min-score", type: "number", step: "0.05", min: "0", value: params.get("min_score") ?? "" });
  const run = h("input", { id: "ring-run", placeholder: t("latest"), value: params.get("run") ?? "" });
  const list = h("section", { id: "ring-list", class: "panel" });
  const apply = (ev: Event): void => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (region.value) q.set("region", region.value);
    if (minScore.value) q.set("min_score", minScore.value);
    if (run.value) q.set("run", run.value);
    location.hash = `#/rings?${q.toString()}`;
  };
  main.replaceChildren(
    h("h1", {}, t("rings")),
    h(
      "form",
      { class: "filters", onsubmit: apply },
      h("label", {}, `${t("region")} `, region),
      h("label", {}, `${t("minScore")} `, minScore),
      h("label", {}, `${t("run")} `, run),
      h("button", { type: "submit" }, t("apply")),
    ),
    list,
  );
  await fill(list, "GET /v1/rings", async () => {
    const body = await getJson<unknown>("/v1/rings", {
      region: params.get("region"),
      min_score: params.get("min_score"),
      run: params.get("run"),
    });
    const rings = listOf(body, "rings").map(ringOf);
    if (!rings.length) return h("p", { class: "muted" }, t("noRings"));
    return h(
      "table",
      { class: "rings" },
      h("tr", {}, h("th", {}, t("ring")), h("th", {}, t("region")), h("th", {}, t("score")), h("th", {}, t("change")), h("th", {}, t("members"))),
      ...rings.map((r) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/ring/${encodeURIComponent(r.id)}`, class: "ring-link" }, r.id)),
          h("td", {}, r.region ?? ""),
          h("td", { class: "num" }, r.score !== null ? r.score.toFixed(3) : ""),
          h("td", {}, String(r.raw.change ?? "")),
          h("td", {}, `${r.members.length}: `, r.members.slice(0, 6).map((m) => m.name ?? m.id).join(", "), r.members.length > 6 ? " …" : ""),
        ),
      ),
    );
  });
}

interface Tie {
  a: string;
  b: string;
  weight: number;
  channels: string[];
}

/** The ring as detection saw it: members tied by the channels in the ring's evidence. */
async function tieGraph(ring: RingView, ties: Tie[]): Promise<{ nodes: GraphNode[]; edges: GraphEdge[] }> {
  const entities = await Promise.all(
    ring.members.map((m) => getJson<Entity>(`/v1/entities/${encodeURIComponent(m.id)}`).catch(() => null)),
  );
  const nodes: GraphNode[] = ring.members.map((m, i) => ({
    id: m.id,
    label: entities[i]?.label ?? "Person",
    name: entities[i]?.name ?? m.name,
    depth: 0,
    properties: entities[i]?.properties ?? {},
  }));
  const edges: GraphEdge[] = ties.map((tie) => ({
    id: `tie:${tie.a}:${tie.b}`,
    type: tie.channels.join("+"),
    source: tie.a,
    target: tie.b,
    key: "",
    inferred: true,
    rule: "ring evidence",
    symmetric: true,
    value: tie.weight,
    properties: { weight: tie.weight, channels: tie.channels.join(", ") },
  }));
  return { nodes, edges };
}

/** A graph of the ring: its ties when detection recorded them, else the members'
 * neighbourhoods merged, keeping the devices/accounts at least two of them share. */
async function ringGraph(ring: RingView): Promise<{ nodes: GraphNode[]; edges: GraphEdge[] }> {
  const ties = (ring.raw.evidence as Json | undefined)?.ties;
  if (Array.isArray(ties) && ties.length) return tieGraph(ring, ties as Tie[]);
  const ids = new Set(ring.members.map((m) => m.id));
  const parts = await Promise.all(
    ring.members.slice(0, 40).map((m) =>
      getJson<Neighbourhood>(`/v1/entities/${encodeURIComponent(m.id)}/neighbourhood`, { depth: 1, max_nodes: 120 }),
    ),
  );
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  for (const part of parts) {
    for (const n of part.nodes) nodes.set(n.id, n);
    for (const e of part.edges) edges.set(e.id, e);
  }
  // Keep an intermediate node only when it ties two members together.
  const degree = new Map<string, Set<string>>();
  for (const e of edges.values()) {
    for (const [a, b] of [
      [e.source, e.target],
      [e.target, e.source],
    ]) {
      if (ids.has(b)) degree.set(a, (degree.get(a) ?? new Set()).add(b));
    }
  }
  const keep = new Set([...nodes.keys()].filter((id) => ids.has(id) || (degree.get(id)?.size ?? 0) >= 2));
  return {
    nodes: [...nodes.values()].filter((n) => keep.has(n.id)),
    edges: [...edges.values()].filter((e) => keep.has(e.source) && keep.has(e.target)),
  };
}

function historyChart(points: { run: string; score: number | null; size: number }[]): HTMLElement {
  const table = h(
    "table",
    { class: "history" },
    h("tr", {}, h("th", {}, t("run")), h("th", {}, t("score")), h("th", {}, t("members"))),
    ...points.map((p) => h("tr", {}, h("td", {}, p.run), h("td", { class: "num" }, p.score?.toFixed(3) ?? ""), h("td", { class: "num" }, p.size))),
  );
  const scores = points.map((p) => p.score).filter((v): v is number => v !== null);
  if (scores.length < 2) return table;
  // Score over the runs: a small inline SVG line, runs left to right.
  const w = 360;
  const ht = 80;
  const top = Math.max(...scores, 1e-9);
  const xy = points
    .map((p, i) => (p.score === null ? null : `${(i * (w - 20)) / (points.length - 1) + 10},${ht - 10 - (p.score / top) * (ht - 20)}`))
    .filter((v) => v !== null)
    .join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(ht));
  svg.setAttribute("class", "history-chart");
  svg.innerHTML = `<polyline points="${xy}" fill="none" stroke="#c0392b" stroke-width="2"/>`;
  return h("div", {}, svg, table);
}

function evidenceView(evidence: Json): HTMLElement {
  const shared = evidence.shared_identifiers as { kind: string; value: string; members: number }[] | undefined;
  const circles = evidence.guarantee_circles as string[][] | undefined;
  const flows = evidence.circular_flows as { src: string; dst: string; amount: number; count: number }[] | undefined;
  if (!Array.isArray(shared) && !Array.isArray(circles)) {
    return h("pre", { class: "evidence" }, JSON.stringify(evidence, null, 2));
  }
  const ratio = evidence.bad_loan_ratio;
  return h(
    "div",
    { class: "evidence" },
    h(
      "p",
      {},
      `${t("badLoans")}: ${String(evidence.bad_loans ?? 0)} / ${String(evidence.loans ?? 0)}`,
      typeof ratio === "number" ? ` (${(ratio * 100).toFixed(1)}%)` : "",
      typeof evidence.region_share === "number" ? ` · ${t("regionShare")}: ${(evidence.region_share * 100).toFixed(0)}%` : "",
    ),
    shared?.length
      ? h(
          "table",
          {},
          h("tr", {}, h("th", {}, t("sharedIdentifier")), h("th", {}, ""), h("th", { class: "num" }, t("members"))),
          ...shared.map((x) => h("tr", {}, h("td", {}, x.kind), h("td", {}, x.value), h("td", { class: "num" }, x.members))),
        )
      : "",
    circles?.length ? h("p", {}, `${t("circle")}: `, circles.map((c) => c.join(" → ")).join("; ")) : "",
    flows?.length ? h("p", {}, `${t("circularFlows")}: `, flows.map((f) => `${f.src} → ${f.dst} ¥${money(f.amount)} ×${f.count}`).join("; ")) : "",
  );
}

export async function renderRing(main: HTMLElement, id: string): Promise<void> {
  const head = h("section", { class: "panel", id: "ring-head" });
  const graphBox = h("div", { id: "graph", class: "graph" });
  const historyBox = h("section", { class: "panel", id: "ring-history" });
  main.replaceChildren(
    h("h1", {}, `${t("ring")} ${id}`),
    head,
    h("section", { class: "graph-area single" }, h("div", { class: "graph-wrap" }, graphBox)),
    h("h2", {}, t("history")),
    historyBox,
  );
  let ring: RingView | null = null;
  await fill(head, "GET /v1/rings/{ring_id}", async () => {
    const raw = await getJson<Json>(`/v1/rings/${encodeURIComponent(id)}`);
    ring = ringOf((raw.ring as Json | undefined) ?? raw);
    const evidence = ring.raw.evidence;
    return h(
      "div",
      {},
      h("p", {}, `${t("region")}: ${ring.region ?? "—"} · ${t("score")}: `, h("strong", { id: "ring-score" }, ring.score?.toFixed(3) ?? "—")),
      h("p", {}, `${t("members")}: `, ...ring.members.flatMap((m, i) => [i ? ", " : "", entityLink(m.id, m.name)])),
      evidence ? h("div", {}, h("h4", {}, t("evidence")), evidenceView(evidence as Json)) : null,
    );
  });
  const current = ring as RingView | null;
  if (!current) {
    graphBox.replaceChildren();
    historyBox.replaceChildren();
    return;
  }
  graphBox.replaceChildren(h("div", { class: "loading" }, t("loading")));
  try {
    const g = await ringGraph(current);
    graphBox.replaceChildren();
    const cy = drawGraph(graphBox, g.nodes, g.edges, null);
    for (const m of current.members) cy.getElementById(m.id).addClass("circle");
  } catch (err) {
    graphBox.replaceChildren(notice(err, "GET /v1/entities/{id}/neighbourhood"));
  }
  const history = (current.raw.history ?? current.raw.runs) as Json[] | undefined;
  historyBox.replaceChildren(
    Array.isArray(history) && history.length
      ? historyChart(
          history.map((p) => ({
            run: String(p.run ?? p.run_id ?? p.date ?? ""),
            score: typeof p.score === "number" ? p.score : null,
            size: Array.isArray(p.members) ? p.members.length : Number(p.size ?? 0),
          })),
        )
      : h("p", { class: "muted" }, t("none")),
  );
}
