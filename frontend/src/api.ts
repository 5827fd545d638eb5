// Every request goes through here: the API key from the login box, JSON errors turned into
// one error type the views can show, and "endpoint not deployed yet" told apart from
// "entity unknown" (both are 404s; only the latter has a resource-specific code).

const KEY_STORAGE = "riskgraph.apiKey";

export function apiKey(): string {
  return sessionStorage.getItem(KEY_STORAGE) ?? "";
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly path: string,
  ) {
    super(message);
  }

  /** The route itself does not exist on this server (not wired yet). */
  get unavailable(): boolean {
    return this.status === 404 && (this.code === "not_found" || this.code === "http_error");
  }

  get unauthorised(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

function headers(): HeadersInit {
  const key = apiKey();
  return key ? { "X-API-Key": key, Accept: "application/json" } : { Accept: "application/json" };
}

export type Query = Record<string, string | number | null | undefined>;

export function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function failure(response: Response, path: string): Promise<ApiError> {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body === "object") {
      code = typeof body.code === "string" ? body.code : code;
      message = typeof body.message === "string" ? body.message : (body.detail ?? message);
    }
  } catch {
    // Not JSON (a proxy error page): keep the status line.
  }
  return new ApiError(response.status, code, message, path);
}

export async function getJson<T>(path: string, query: Query = {}): Promise<T> {
  const target = url(path, query);
  let response: Response;
  try {
    response = await fetch(target, { headers: headers() });
  } catch (err) {
    throw new ApiError(0, "network", `network error: ${String(err)}`, path);
  }
  if (!response.ok) throw await failure(response, path);
  return (await response.json()) as T;
}

/** Fetch a file with the API key and hand it to the browser as a download. */
export async function download(path: string, query: Query, filename: string): Promise<void> {
  const response = await fetch(url(path, query), { headers: { "X-API-Key": apiKey() } });
  if (!response.ok) throw await failure(response, path);
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// --- response shapes (the subset the workbench reads) -------------------------------------

export interface Entity {
  id: string;
  label: string;
  name: string | null;
  aliases: string[];
  properties: Record<string, unknown>;
  provenance?: { source: string; line: number; job_id: string } | null;
}

export interface SearchResult {
  query: string;
  results: Entity[];
}

export interface GraphNode {
  id: string;
  label: string;
  name: string | null;
  depth: number;
  properties: Record<string, unknown>;
}

export interface GraphEdge {
  id: string;
  type: string;
  source: string;
  target: string;
  key: string;
  inferred: boolean;
  rule: string | null;
  symmetric: boolean;
  value: number | null;
  properties: Record<string, unknown>;
}

export interface Neighbourhood {
  entity_id: string;
  depth: number;
  truncated: boolean;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface LimitUse {
  name: string;
  description: string;
  limit: number;
  exposure: number;
  utilisation: number;
  breached: boolean;
}

export interface GroupMember {
  id: string;
  name: string | null;
  label: string;
  exposure: number;
  guarantees_given: number;
  reasons: { kind: string; other_id: string | null; text: string; rule: string | null }[];
}

export interface Group {
  entity_id: string;
  group_id: string;
  members: GroupMember[];
  exposure: number;
  guarantees_given: number;
  large_exposure: boolean;
  limits: LimitUse[];
}

export interface Guarantees {
  circles: {
    members: string[];
    cycles: string[][];
    mutual_pairs: string[][];
    total_amount: number;
  }[];
  chains: { path: string[]; amounts: number[]; length: number; total_amount: number }[];
}

export interface ControlList {
  relations: { controller: string; company: string; basis: string; explanation: string }[];
}

export interface Owners {
  owners: {
    person: string;
    name: string | null;
    effective_share_pct: number;
    controls: boolean;
    reasons: string[];
  }[];
}

export interface Derivation {
  fact: { predicate: string; args: unknown[]; value?: number };
  rule: string | null;
  source?: { file: string; line: number | null };
  premises: Derivation[];
}
