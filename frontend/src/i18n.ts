// Interface labels in English and Chinese; data (names, ids) is shown as stored.

export type Lang = "en" | "zh";

const LANG_STORAGE = "riskgraph.lang";

const TEXT = {
  appTitle: { en: "riskgraph workbench", zh: "关联风险分析工作台" },
  search: { en: "Search", zh: "搜索" },
  searchPlaceholder: {
    en: "Name (Chinese or latin), customer id, alias, id number or USCC",
    zh: "名称、客户号、别名、身份证号或统一社会信用代码",
  },
  searchHint: {
    en: "Type at least one character; results appear as you type.",
    zh: "输入任意字符即可实时检索。",
  },
  noResults: { en: "No entity matches", zh: "没有匹配的客户" },
  rings: { en: "Rings", zh: "团伙" },
  alerts: { en: "Alerts", zh: "预警" },
  asOf: { en: "As of", zh: "截至日期" },
  asOfHelp: {
    en: "Holdings recorded by, and guarantees in force on, this date",
    zh: "按该日期已登记的持股与有效担保计算",
  },
  apiKey: { en: "API key", zh: "API 密钥" },
  signIn: { en: "Save", zh: "保存" },
  signOut: { en: "Clear", zh: "清除" },
  keySaved: { en: "key set for this session", zh: "本会话已设置密钥" },
  loading: { en: "Loading…", zh: "加载中…" },
  unavailable: {
    en: "This part is not available on this server yet",
    zh: "服务器尚未提供此功能",
  },
  unauthorised: {
    en: "The server refused the request: enter a valid API key above.",
    zh: "服务器拒绝了请求：请在上方输入有效的 API 密钥。",
  },
  notFound: { en: "Not found", zh: "未找到" },
  error: { en: "Error", zh: "错误" },
  graph: { en: "Graph neighbourhood", zh: "关系图谱" },
  depth: { en: "Depth", zh: "层数" },
  legendInferred: { en: "dashed = inferred (click to explain)", zh: "虚线 = 推理得出（点击查看推理过程）" },
  legendCircle: { en: "red = guarantee circle", zh: "红色 = 担保圈" },
  truncated: { en: "Graph truncated: too many nodes", zh: "节点过多，图谱已截断" },
  details: { en: "Details", zh: "详情" },
  clickHint: {
    en: "Click a node or a link. Dashed links were inferred; their derivation appears here.",
    zh: "点击节点或连线查看详情；虚线为推理关系，将在此显示推理过程。",
  },
  explanation: { en: "Why this link exists", zh: "推理依据" },
  explainUnavailable: {
    en: "Explanations are not available on this server yet (GET /v1/explain is not wired).",
    zh: "服务器尚未提供推理解释（GET /v1/explain 未接入）。",
  },
  noExplanation: { en: "No stored derivation for this link.", zh: "该关系没有存储的推理记录。" },
  rule: { en: "rule", zh: "规则" },
  sourceRow: { en: "source row", zh: "来源记录" },
  open: { en: "Open", zh: "打开" },
  group: { en: "Connected-client group", zh: "关联客户集团" },
  members: { en: "Members", zh: "成员" },
  exposure: { en: "Exposure", zh: "授信敞口" },
  guaranteesGiven: { en: "Guarantees given", zh: "对外担保" },
  limit: { en: "Limit", zh: "限额" },
  utilisation: { en: "Utilisation", zh: "占用率" },
  breached: { en: "BREACHED", zh: "超限" },
  largeExposure: { en: "large exposure", zh: "大额风险暴露" },
  noLimits: { en: "No limit applies", zh: "无适用限额" },
  guarantees: { en: "Guarantee circles and chains", zh: "担保圈与担保链" },
  circle: { en: "Circle", zh: "担保圈" },
  chain: { en: "Chain", zh: "担保链" },
  mutualPairs: { en: "mutual pairs", zh: "互保" },
  total: { en: "total", zh: "合计" },
  noCircles: { en: "Not in any guarantee circle or chain", zh: "未涉及担保圈或担保链" },
  control: { en: "Control and beneficial owners", zh: "控制关系与受益所有人" },
  controllers: { en: "Controlled by", zh: "控制人" },
  controlled: { en: "Controls", zh: "控制的企业" },
  ubo: { en: "Beneficial owners", zh: "受益所有人" },
  none: { en: "none", zh: "无" },
  report: { en: "Risk report", zh: "风险报告" },
  reportHtml: { en: "HTML report", zh: "HTML 报告" },
  reportPdf: { en: "PDF report", zh: "PDF 报告" },
  region: { en: "Region", zh: "地区" },
  minScore: { en: "Min. score", zh: "最低评分" },
  run: { en: "Run", zh: "批次" },
  latest: { en: "latest", zh: "最新" },
  apply: { en: "Apply", zh: "筛选" },
  score: { en: "Score", zh: "评分" },
  evidence: { en: "Evidence", zh: "证据" },
  history: { en: "History across nightly runs", zh: "历次夜间批处理结果" },
  noRings: { en: "No ring matches the filters", zh: "没有符合条件的团伙" },
  noAlerts: { en: "No alerts", zh: "暂无预警" },
  ring: { en: "Ring", zh: "团伙" },
  change: { en: "Change", zh: "变化" },
  ringAlerts: { en: "New and grown rings", zh: "新增与扩大的团伙" },
  limitBreaches: { en: "Limit breaches", zh: "限额超限" },
  badLoans: { en: "Bad loans", zh: "不良贷款" },
  regionShare: { en: "in one region", zh: "同一地区占比" },
  sharedIdentifier: { en: "Shared identifier", zh: "共用标识" },
  circularFlows: { en: "Circular money flows", zh: "资金闭环" },
  localRing: { en: "Ring clustered around this customer now", zh: "以该客户为中心的实时聚类" },
  flagged: { en: "flagged", zh: "已标记" },
  notFlagged: { en: "not flagged", zh: "未标记" },
  inRings: { en: "In rings of the latest run", zh: "最近一次批处理识别的团伙" },
  kind: { en: "Kind", zh: "类型" },
  message: { en: "Message", zh: "内容" },
  label_Person: { en: "Person", zh: "个人" },
  label_Company: { en: "Company", zh: "企业" },
  label_Loan: { en: "Loan", zh: "贷款" },
  label_Account: { en: "Account", zh: "账户" },
  label_Device: { en: "Device", zh: "设备" },
  rel_HOLDS_SHARES: { en: "holds shares", zh: "持股" },
  rel_HOLDS_POSITION: { en: "position", zh: "任职" },
  rel_RELATIVE_OF: { en: "relative", zh: "亲属" },
  rel_GUARANTEES: { en: "guarantees", zh: "担保" },
  rel_BORROWED: { en: "borrowed", zh: "借款" },
  rel_OWNS_ACCOUNT: { en: "owns account", zh: "开户" },
  rel_TRANSFERRED: { en: "money flow", zh: "资金往来" },
  rel_USES_DEVICE: { en: "uses device", zh: "使用设备" },
} as const;

export type TextKey = keyof typeof TEXT;

let current: Lang = (localStorage.getItem(LANG_STORAGE) as Lang | null) ?? "zh";

export function lang(): Lang {
  return current;
}

export function setLang(value: Lang): void {
  current = value;
  localStorage.setItem(LANG_STORAGE, value);
  document.documentElement.lang = value === "zh" ? "zh-CN" : "en";
}

export function t(key: TextKey): string {
  return TEXT[key][current];
}

/** A label for a graph vocabulary term, falling back to the term itself. */
export function term(prefix: "label" | "rel", name: string): string {
  const key = `${prefix}_${name}` as TextKey;
  return key in TEXT ? t(key) : name;
}

export function money(value: number): string {
  return value.toLocaleString(current === "zh" ? "zh-CN" : "en-GB", {
    maximumFractionDigits: 0,
  });
}

export function pct(value: number, digits = 1): string {
  return `${(value * 100).toFixed(digits)}%`;
}
