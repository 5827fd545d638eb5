import type { Core } from "cytoscape";
import {
  ApiError,
  type ControlList,
  type Derivation,
  type Entity,
  type GraphEdge,
  type GraphNode,
  type Group,
  type Guarantees,
  type Neighbourhood,
  type Owners,
  download,
  getJson,
} from "../api";
import { entityLink, fill, h, notice } from "../dom";
import { drawGraph, edgeLabel, highlightCircles } from "../graph";
import { money, pct, t, term } from "../i18n";

const SHOWN_PROPS = [
  "id_number",
  "uscc",
  "region_code",
  "industry",
  "registered_capital",
  "phone",
  "address",
  "established_date",
  "birth_date",
];

function header(entity: Entity, asOf: string | null): HTMLElement {
  const props = SHOWN_PROPS.filter((p) => entity.properties[p] !== undefined && entity.properties[p] !== null);
  const reportButton = (fmt: "html" | "pdf", label: string): HTMLElement => {
    const status = h("span", { class: "small muted" });
    const button = h(
      "button",
      {
        type: "button",
        class: `report-${fmt}`,
        onclick: async () => {
          status.textContent = t("loading");
          try {
            await download(
              `/v1/reports/entity/${encodeURIComponent(entity.id)}.${fmt}`,
              { as_of: asOf },
              `riskgraph-${entity.id}.${fmt}`,
            );
            status.textContent = "";
          } catch (err) {
            status.replaceChildren(notice(err, `GET /v1/reports/entity/{id}.${fmt}`));
          }
        },
      },
      label,
    );
    return h("span", {}, button, status);
  };
  return h(
    "section",
    { class: "entity-head" },
    h(
      "div",
      {},
      h("span", { class: `badge ${entity.label}` }, term("label", entity.label)),
      h("h1", { id: "entity-name" }, entity.name ?? entity.id),
      h("div", { class: "muted" }, entity.id, entity.aliases.length ? ` · ${entity.aliases.join(", ")}` : ""),
    ),
    h(
      "dl",
      { class: "props" },
      ...props.flatMap((p) => [h("dt", {}, p), h("dd", {}, String(entity.properties[p]))]),
    ),
    h("div", { class: "reports" }, h("strong", {}, `${t("report")}: `), reportButton("html", t("reportHtml")), reportButton("pdf", t("reportPdf"))),
  );
}

function derivationTree(node: Derivation): HTMLElement {
  const fact = `${node.fact.predicate}(${node.fact.args.map(String).join(", ")})${
    node.fact.value !== undefined && node.fact.value !== null ? ` = ${node.fact.value}` : ""
  }`;
  const meta: (string | HTMLElement)[] = [];
  if (node.rule && node.rule !== "source") meta.push(h("span", { class: "rule" }, `${t("rule")}: ${node.rule}`));
  if (node.source) meta.push(h("span", { class: "source" }, `${t("sourceRow")}: ${node.source.file}:${node.source.line ?? "?"}`));
  return h(
    "li",
    {},
    h("code", {}, fact),
    " ",
    ...meta,
    node.premises.length ? h("ul", {}, ...node.premises.map(derivationTree)) : null,
  );
}

async function explanation(edge: GraphEdge): Promise<HTMLElement> {
  try {
    const body = await getJson<Derivation | { tree: Derivation } | { derivation: Derivation }>("/v1/explain", {
      subject: edge.source,
      predicate: edge.type,
      object: edge.target,
    });
    const tree = "fact" in body ? body : "tree" in body ? body.tree : body.derivation;
    return h("ul", { class: "derivation", id: "derivation" }, derivationTree(tree));
  } catch (err) {
    if (err instanceof ApiError && err.unavailable) {
      return h("div", { class: "notice unavailable", id: "derivation-unavailable" }, t("explainUnavailable"));
    }
    if (err instanceof ApiError && err.status === 404) {
      return h("div", { class: "notice" }, t("noExplanation"));
    }
    return notice(err, "GET /v1/explain");
  }
}

function propsTable(props: Record<string, unknown>): HTMLElement {
  return h(
    "dl",
    { class: "props" },
    ...Object.entries(props)
      .filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "number" ? money(v) : String(v))]),
  );
}

function showNode(panel: HTMLElement, node: GraphNode): void {
  panel.replaceChildren(
    h("h3", {}, `${term("label", node.label)} · ${node.name ?? node.id}`),
    node.label === "Person" || node.label === "Company" ? entityLink(node.id, node.name) : h("div", {}, node.id),
    propsTable(node.properties),
  );
}

function showEdge(panel: HTMLElement, edge: GraphEdge): void {
  const title = edge.inferred ? edge.type : term("rel", edge.type);
  panel.replaceChildren(
    h("h3", {}, title, edge.inferred ? h("span", { class: "badge inferred" }, "inferred") : null),
    h("div", {}, entityLink(edge.source), " → ", entityLink(edge.target)),
    edge.rule ? h("div", { class: "rule" }, `${t("rule")}: ${edge.rule}`) : "",
    !edge.inferred && edgeLabel(edge) ? h("div", {}, edgeLabel(edge)) : "",
    propsTable(edge.properties),
  );
  if (edge.inferred) {
    const box = h("div", { class: "explanation" }, h("h4", {}, t("explanation")), h("div", { class: "loading" }, t("loading")));
    panel.append(box);
    void explanation(edge).then((content) => box.replaceChildren(h("h4", {}, t("explanation")), content));
  }
}

function limitBars(limits: Group["limits"]): HTMLElement {
  if (!limits.length) return h("p", { class: "muted" }, t("noLimits"));
  return h(
    "div",
    { class: "bars" },
    ...limits.map((u) =>
      h(
        "div",
        { class: `bar-row${u.breached ? " breached" : ""}`, title: u.description },
        h("div", { class: "bar-label" }, u.name, h("span", { class: "small muted" }, ` ${u.description}`)),
        h(
          "div",
          { class: "bar" },
          h("div", { class: "bar-fill", style: `width:${Math.min(100, u.utilisation * 100).toFixed(1)}%` }),
          h("div", { class: "bar-limit" }),
        ),
        h(
          "div",
          { class: "bar-value" },
          `${money(u.exposure)} / ${money(u.limit)} (${pct(u.utilisation)})`,
          u.breached ? h("strong", { class: "breach" }, ` ${t("breached")}`) : null,
        ),
      ),
    ),
  );
}

async function groupPanel(id: string, asOf: string | null): Promise<HTMLElement[]> {
  const g = await getJson<Group>(`/v1/entities/${encodeURIComponent(id)}/group`, { as_of: asOf });
  return [
    h(
      "p",
      {},
      `${t("exposure")}: `,
      h("strong", { id: "group-exposure" }, `¥${money(g.exposure)}`),
      ` · ${t("guaranteesGiven")}: ¥${money(g.guarantees_given)}`,
      g.large_exposure ? h("span", { class: "badge warn" }, t("largeExposure")) : null,
    ),
    limitBars(g.limits),
    h(
      "table",
      { class: "members" },
      h("tr", {}, h("th", {}, t("members")), h("th", {}, t("exposure")), h("th", {}, t("guaranteesGiven")), h("th", {}, "")),
      ...g.members.map((m) =>
        h(
          "tr",
          {},
          h("td", {}, entityLink(m.id, m.name)),
          h("td", { class: "num" }, money(m.exposure)),
          h("td", { class: "num" }, money(m.guarantees_given)),
          h("td", { class: "small" }, m.reasons.map((r) => r.text).join("; ")),
        ),
      ),
    ),
  ];
}

async function guaranteePanel(id: string, asOf: string | null, cy: Promise<Core | null>): Promise<HTMLElement[]> {
  const g = await getJson<Guarantees>(`/v1/entities/${encodeURIComponent(id)}/guarantees`, { as_of: asOf });
  const graph = await cy;
  if (graph) highlightCircles(graph, g.circles);
  if (!g.circles.length && !g.chains.length) return [h("p", { class: "muted" }, t("noCircles"))];
  return [
    ...g.circles.map((c, i) =>
      h(
        "div",
        { class: "circle-box" },
        h("strong", {}, `${t("circle")} ${i + 1}`),
        ` · ${c.members.length} · ${t("total")} ¥${money(c.total_amount)}`,
        h("div", {}, ...c.members.flatMap((m, k) => [k ? " → " : "", entityLink(m)]), c.members.length ? ` → ${c.members[0]}` : ""),
        c.mutual_pairs.length
          ? h("div", { class: "small" }, `${t("mutualPairs")}: ${c.mutual_pairs.map((p) => p.join(" ⇄ ")).join(", ")}`)
          : null,
      ),
    ),
    ...g.chains.map((c) =>
      h(
        "div",
        { class: "chain-box" },
        h("strong", {}, `${t("chain")} (${c.length})`),
        ` · ${t("total")} ¥${money(c.total_amount)}`,
        h("div", {}, ...c.path.flatMap((m, k) => [k ? " → " : "", entityLink(m)])),
      ),
    ),
  ];
}

async function controlPanel(id: string, asOf: string | null, isCompany: boolean): Promise<HTMLElement[]> {
  const q = { as_of: asOf };
  const base = `/v1/entities/${encodeURIComponent(id)}`;
  const [up, down, owners] = await Promise.all([
    getJson<ControlList>(`${base}/controllers`, q),
    getJson<ControlList>(`${base}/controlled`, q),
    isCompany ? getJson<Owners>(`${base}/ubo`, q) : Promise.resolve(null),
  ]);
  const list = (rel: ControlList, side: "controller" | "company"): HTMLElement =>
    rel.relations.length
      ? h("ul", {}, ...rel.relations.map((r) => h("li", {}, entityLink(r[side]), h("div", { class: "small muted" }, r.explanation))))
      : h("p", { class: "muted" }, t("none"));
  const parts = [h("h4", {}, t("controllers")), list(up, "controller"), h("h4", {}, t("controlled")), list(down, "company")];
  if (owners) {
    parts.push(
      h("h4", {}, t("ubo")),
      owners.owners.length
        ? h(
            "ul",
            {},
            ...owners.owners.map((o) =>
              h("li", {}, entityLink(o.person, o.name), ` ${o.effective_share_pct.toFixed(2)}%`, h("div", { class: "small muted" }, o.reasons.join("; "))),
            ),
          )
        : h("p", { class: "muted" }, t("none")),
    );
  }
  return parts;
}

interface LocalRing {
  cluster: string[];
  ring_members: string[];
  score: number | null;
  flagged: boolean;
  current_rings: string[];
}

async function ringPanel(id: string): Promise<HTMLElement[]> {
  const r = await getJson<LocalRing>(`/v1/entities/${encodeURIComponent(id)}/ring`);
  const current = r.current_rings.length
    ? h("ul", { id: "entity-rings" }, ...r.current_rings.map((ring) => h("li", {}, h("a", { href: `#/ring/${encodeURIComponent(ring)}` }, `${t("ring")} ${ring}`))))
    : h("p", { class: "muted" }, t("none"));
  return [
    h("h4", {}, t("inRings")),
    current,
    h("h4", {}, t("localRing")),
    r.ring_members.length
      ? h(
          "p",
          {},
          `${t("score")} ${r.score?.toFixed(3) ?? "—"} · `,
          h("span", { class: r.flagged ? "breach" : "muted" }, r.flagged ? t("flagged") : t("notFlagged")),
          h("div", {}, ...r.ring_members.flatMap((m, i) => [i ? ", " : "", entityLink(m)])),
        )
      : h("p", { class: "muted" }, t("none")),
  ];
}

export async function renderEntity(main: HTMLElement, id: string, asOf: string | null): Promise<void> {
  main.replaceChildren(h("div", { class: "loading" }, t("loading")));
  let entity: Entity;
  try {
    entity = await getJson<Entity>(`/v1/entities/${encodeURIComponent(id)}`);
  } catch (err) {
    main.replaceChildren(notice(err, "GET /v1/entities/{id}"));
    return;
  }
  const graphBox = h("div", { id: "graph", class: "graph" });
  const details = h("aside", { id: "details", class: "details" }, h("p", { class: "muted" }, t("clickHint")));
  const depth = h("select", { id: "depth" }, ...[1, 2, 3].map((d) => h("option", { value: String(d) }, String(d))));
  const graphStatus = h("div", { class: "graph-status" });
  const groupBox = h("section", { class: "panel", id: "group-panel" });
  const guaranteeBox = h("section", { class: "panel", id: "guarantee-panel" });
  const controlBox = h("section", { class: "panel", id: "control-panel" });
  const ringBox = h("section", { class: "panel", id: "ring-panel" });
  main.replaceChildren(
    header(entity, asOf),
    h(
      "section",
      { class: "graph-area" },
      h(
        "div",
        { class: "graph-wrap" },
        h(
          "div",
          { class: "graph-tools" },
          h("strong", {}, t("graph")),
          h("label", {}, ` ${t("depth")} `, depth),
          h("span", { class: "legend small" }, t("legendInferred"), " · ", t("legendCircle")),
          graphStatus,
        ),
        graphBox,
      ),
      details,
    ),
    h(
      "div",
      { class: "panels" },
      h("div", {}, h("h2", {}, t("group")), groupBox),
      h("div", {}, h("h2", {}, t("guarantees")), guaranteeBox),
      h("div", {}, h("h2", {}, t("control")), controlBox),
      h("div", {}, h("h2", {}, t("rings")), ringBox),
    ),
  );

  const drawn = async (d: number): Promise<Core | null> => {
    graphStatus.replaceChildren(h("span", { class: "loading" }, t("loading")));
    try {
      const n = await getJson<Neighbourhood>(`/v1/entities/${encodeURIComponent(entity.id)}/neighbourhood`, {
        depth: d,
        as_of: asOf,
      });
      graphStatus.replaceChildren(n.truncated ? h("span", { class: "notice" }, t("truncated")) : "");
      return drawGraph(graphBox, n.nodes, n.edges, entity.id, {
        onNode: (node) => showNode(details, node),
        onEdge: (edge) => showEdge(details, edge),
      });
    } catch (err) {
      graphStatus.replaceChildren();
      graphBox.replaceChildren(notice(err, "GET /v1/entities/{id}/neighbourhood"));
      return null;
    }
  };
  let cy = drawn(1);
  depth.addEventListener("change", () => {
    cy = drawn(Number(depth.value));
    void fill(guaranteeBox, "GET /v1/entities/{id}/guarantees", () => guaranteePanel(entity.id, asOf, cy));
  });
  void fill(groupBox, "GET /v1/entities/{id}/group", () => groupPanel(entity.id, asOf));
  void fill(guaranteeBox, "GET /v1/entities/{id}/guarantees", () => guaranteePanel(entity.id, asOf, cy));
  void fill(controlBox, "GET /v1/entities/{id}/controllers", () => controlPanel(entity.id, asOf, entity.label === "Company"));
  void fill(ringBox, "GET /v1/entities/{id}/ring", () => ringPanel(entity.id));
}
