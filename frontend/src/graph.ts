// The cytoscape graph view shared by the entity and ring pages.

import cytoscape from "cytoscape";
import type { Core, ElementDefinition, StylesheetJson } from "cytoscape";
import type { GraphEdge, GraphNode } from "./api";
import { money, term } from "./i18n";

const NODE_COLOURS: Record<string, string> = {
  Person: "#2f6fb3",
  Company: "#2f8f5b",
  Loan: "#b07d12",
  Account: "#7a7a7a",
  Device: "#8a5bb0",
};

const EDGE_COLOURS: Record<string, string> = {
  HOLDS_SHARES: "#2f8f5b",
  HOLDS_POSITION: "#6b7c93",
  RELATIVE_OF: "#8a5bb0",
  GUARANTEES: "#d2691e",
  BORROWED: "#b07d12",
  OWNS_ACCOUNT: "#9aa5b1",
  TRANSFERRED: "#1a9c9c",
  USES_DEVICE: "#8a5bb0",
};

function pctLabel(value: unknown): string {
  return typeof value === "number" ? `${value.toFixed(value % 1 ? 1 : 0)}%` : "";
}

export function edgeLabel(edge: GraphEdge): string {
  const p = edge.properties;
  switch (edge.type) {
    case "HOLDS_SHARES":
      return pctLabel(p.share_pct ?? p.voting_pct);
    case "HOLDS_POSITION":
      return String(p.role ?? edge.key ?? "");
    case "RELATIVE_OF":
      return String(p.relation ?? term("rel", edge.type));
    case "GUARANTEES":
      return typeof p.amount === "number" ? `${term("rel", edge.type)} ${money(p.amount)}` : term("rel", edge.type);
    case "TRANSFERRED":
      return typeof p.total_amount === "number" ? `¥${money(p.total_amount)} ×${p.count ?? "?"}` : "";
    default:
      return edge.inferred ? edge.type : "";
  }
}

export function nodeLabel(node: GraphNode): string {
  if (node.label === "Loan" && typeof node.properties.balance === "number") {
    return `${node.id}\n¥${money(node.properties.balance)}`;
  }
  return node.name ? `${node.name}\n${node.id}` : node.id;
}

const STYLE: StylesheetJson = [
  {
    selector: "node",
    style: {
      "background-color": (n) => NODE_COLOURS[n.data("label") as string] ?? "#555",
      label: "data(display)",
      "font-size": 9,
      "text-wrap": "wrap",
      "text-valign": "bottom",
      "text-margin-y": 3,
      color: "#1d2733",
      width: 22,
      height: 22,
    },
  },
  { selector: "node[label = 'Company']", style: { shape: "round-rectangle", width: 26 } },
  { selector: "node[label = 'Loan']", style: { shape: "diamond", width: 14, height: 14 } },
  { selector: "node[label = 'Account']", style: { shape: "rectangle", width: 10, height: 10, "font-size": 7 } },
  { selector: "node[label = 'Device']", style: { shape: "triangle", width: 12, height: 12, "font-size": 7 } },
  { selector: "node.focus", style: { "border-width": 4, "border-color": "#111", width: 34, height: 34 } },
  { selector: "node.circle", style: { "border-width": 4, "border-color": "#d62728" } },
  {
    selector: "edge",
    style: {
      width: 1.6,
      "line-color": (e) => EDGE_COLOURS[e.data("type") as string] ?? "#888",
      "target-arrow-color": (e) => EDGE_COLOURS[e.data("type") as string] ?? "#888",
      "target-arrow-shape": "triangle",
      "arrow-scale": 0.8,
      "curve-style": "bezier",
      label: "data(display)",
      "font-size": 8,
      "text-rotation": "autorotate",
      "text-background-color": "#fff",
      "text-background-opacity": 0.8,
      "text-background-padding": "1px",
      color: "#333",
    },
  },
  { selector: "edge[?symmetric]", style: { "target-arrow-shape": "none" } },
  {
    selector: "edge[?inferred]",
    style: {
      "line-style": "dashed",
      "line-dash-pattern": [6, 3],
      "line-color": "#c0392b",
      "target-arrow-color": "#c0392b",
      width: 2,
      color: "#c0392b",
    },
  },
  { selector: "edge.circle", style: { width: 4, "line-color": "#d62728", "target-arrow-color": "#d62728" } },
  { selector: ":selected", style: { "overlay-color": "#f1c40f", "overlay-opacity": 0.35, "overlay-padding": 4 } },
];

export interface GraphHandlers {
  onNode?: (node: GraphNode) => void;
  onEdge?: (edge: GraphEdge) => void;
}

declare global {
  interface Window {
    // Exposed for end-to-end tests and for analysts poking in the console.
    __cy?: Core;
  }
}

export function drawGraph(
  container: HTMLElement,
  nodes: GraphNode[],
  edges: GraphEdge[],
  focus: string | null,
  handlers: GraphHandlers = {},
): Core {
  const known = new Set(nodes.map((n) => n.id));
  const elements: ElementDefinition[] = [
    ...nodes.map((n) => ({
      group: "nodes" as const,
      data: { ...n, display: nodeLabel(n) },
      classes: n.id === focus ? "focus" : "",
    })),
    ...edges
      .filter((e) => known.has(e.source) && known.has(e.target))
      .map((e) => ({ group: "edges" as const, data: { ...e, display: edgeLabel(e) } })),
  ];
  const cy = cytoscape({
    container,
    elements,
    style: STYLE,
    layout:
      nodes.length > 1
        ? {
            name: "cose",
            animate: false,
            randomize: false,
            nodeRepulsion: () => 60_000,
            idealEdgeLength: () => 90,
            nodeOverlap: 20,
            gravity: 0.3,
            numIter: 1500,
          }
        : { name: "grid" },
    minZoom: 0.2,
    maxZoom: 3,
  });
  cy.on("tap", "node", (ev) => handlers.onNode?.(ev.target.data() as GraphNode));
  cy.on("tap", "edge", (ev) => handlers.onEdge?.(ev.target.data() as GraphEdge));
  container.dataset.nodes = String(cy.nodes().length);
  container.dataset.edges = String(cy.edges().length);
  window.__cy = cy;
  return cy;
}

/** Mark guarantee-circle members and the guarantees between them. */
export function highlightCircles(cy: Core, circles: { members: string[] }[]): void {
  for (const circle of circles) {
    const members = new Set(circle.members);
    for (const id of members) cy.getElementById(id).addClass("circle");
    cy.edges("[type = 'GUARANTEES']")
      .filter((e) => members.has(e.data("source")) && members.has(e.data("target")))
      .addClass("circle");
  }
}
