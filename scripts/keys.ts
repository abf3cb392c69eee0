// `npm run keys -- create|list|revoke|limits|usage|org`: API keys and orgs of pay-per-request billing (issue 15,
// docs/BILLING.md) administered straight in the account store that BILLING_DATABASE_URL names — the same
// database the edges read, so a revocation or a new limit holds on the next request (the store keeps no cache).
// Every argument is checked before the database is opened: a typo never half-applies.
import { keyJson, orgJson } from "../src/api/admin.ts";
import { type AccountStore, type BudgetPeriod, type KeyChanges, type KeyRecord, type OrgLimits, type OrgState, SCOPES, type Scope, UnknownOrgError } from "../src/billing/account-store.ts";
import { type OpenedAccountStore, openAccountStore } from "../src/billing/open-account-store.ts";
import { eur, formatEur, toMicro } from "../src/billing/prices.ts";
import { choiceFlag, cliFail, intFlag, parseCli } from "./cli.ts";

const SCRIPT = "keys";
const PERIODS = ["month", "day", "none"] as const;
const KEY_ID = /^[a-z2-7]{12}$/;
const ORG_ID = /^org-[a-z2-7]{12}$/;
/** rpm/tpm are 32-bit integer columns. */
const MAX_RATE = 2 ** 31 - 1;

const DB_HELP = `Database: BILLING_DATABASE_URL (required), either
  postgres://user@host:port/database   a PostgreSQL server (the one the edges use)
  pglite:<directory>                   PGlite embedded, persisted in <directory>`;

const USAGE = `Usage: npm run keys -- <command> [options]

Commands:
  create --name NAME [options]   a new key, shown once
  list                           every key with its limits and this period's spend
  revoke KEY_ID                  revoke a key (immediately: the next request is refused)
  limits KEY_ID [options]        change a key's budget, period, rate limits or org
  usage KEY_ID [--from --to]     usage per UTC day and model
  org create --name NAME [opts]  a new org: a budget its keys share (create --org ORG_ID adds a key)
  org list                       every org with its budget and this period's spend
  org limits ORG_ID [options]    change an org's budget or period

Run \`npm run keys -- <command> --help\` for a command's options; --json on any command prints JSON.

${DB_HELP}
`;

const CREATE_USAGE = `Usage: npm run keys -- create --name NAME [options]

Creates a key and prints it ONCE: only its hash is stored, so it cannot be shown again.

Options:
  --name NAME            who or what the key is for (required)
  --scopes LIST          comma-separated, of ${SCOPES.join(", ")} (default: chat,translate)
  --budget-eur EUR       spend allowed per period, at most 6 decimals (default: none, unlimited)
  --period P             month | day | none (budget for the key's lifetime) (default: month; UTC)
  --rpm N                requests per minute (default: no limit)
  --tpm N                tokens per minute (default: no limit)
  --org ORG_ID           the org whose budget the key also spends (see \`org list\`; default: none)
  --json                 print JSON
  -h, --help             this text

${DB_HELP}
`;

const LIST_USAGE = `Usage: npm run keys -- list [--json]

Every key: id, name, scopes, budget, period, spent this period (and held by open reservations),
rate limits, org, created, revoked. Never the key itself, nor its hash.

${DB_HELP}
`;

const REVOKE_USAGE = `Usage: npm run keys -- revoke KEY_ID [--json]

Revokes the key: every edge refuses it from its next request on. Cannot be undone.
KEY_ID is the 12 characters after "sk-alia-" (see \`list\`). Exit code 1 for an unknown key.

${DB_HELP}
`;

const LIMITS_USAGE = `Usage: npm run keys -- limits KEY_ID [options]

Changes only the limits given, then prints the key's limits. A budget lowered below this period's spend
refuses further requests; nothing is undone. Without options: prints the current limits.

Options:
  --budget-eur EUR|none  spend allowed per period, at most 6 decimals; none = unlimited
  --period P             month | day | none (UTC)
  --rpm N|none           requests per minute
  --tpm N|none           tokens per minute
  --org ORG_ID|none      move the key into an org (its open reservations count there from now), or out
  --json                 print JSON
  -h, --help             this text

${DB_HELP}
`;

const USAGE_USAGE = `Usage: npm run keys -- usage KEY_ID [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--json]

Requests, tokens, target passes, cost and saving (vs. no speculation) per UTC day and model, both
dates inclusive (default: from the first of this month to today, UTC).

${DB_HELP}
`;

const ORG_USAGE = `Usage: npm run keys -- org <create|list|limits> [options]

An org is a budget shared by its keys: a key in an org may spend only what both its own budget and the
org's allow (a request refused by the org's gets 402 with limit_source "org"). Add a key to an org with
\`create --org ORG_ID\` or \`limits KEY_ID --org ORG_ID\`.

  org create --name NAME [--budget-eur EUR] [--period month|day|none] [--json]
  org list [--json]
  org limits ORG_ID [--budget-eur EUR|none] [--period month|day|none] [--json]

Run \`npm run keys -- org <command> --help\` for a command's options.

${DB_HELP}
`;

const ORG_CREATE_USAGE = `Usage: npm run keys -- org create --name NAME [options]

Creates an org and prints its id (org-…), for \`create --org\` and \`limits KEY_ID --org\`.

Options:
  --name NAME            who the org is (required)
  --budget-eur EUR       spend allowed per period for all its keys together, at most 6 decimals
                         (default: none, unlimited)
  --period P             month | day | none (budget for the org's lifetime) (default: month; UTC)
  --json                 print JSON
  -h, --help             this text

${DB_HELP}
`;

const ORG_LIST_USAGE = `Usage: npm run keys -- org list [--json]

Every org: id, name, budget, period, spent this period by its keys (and held by their open
reservations), remaining, number of keys, created.

${DB_HELP}
`;

const ORG_LIMITS_USAGE = `Usage: npm run keys -- org limits ORG_ID [options]

Changes only the limits given, then prints the org's. A budget lowered below this period's spend refuses
its keys' further requests; nothing is undone. Without options: prints the current limits.

Options:
  --budget-eur EUR|none  spend allowed per period, at most 6 decimals; none = unlimited
  --period P             month | day | none (UTC)
  --json                 print JSON
  -h, --help             this text

${DB_HELP}
`;

type Out = (human: () => string, json: () => unknown) => void;

function main(argv: string[]): Promise<void> | undefined {
  const [command, ...args] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    if (command === undefined) {
      process.stderr.write(USAGE);
      process.exit(2);
    }
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case "create":
      return create(args);
    case "list":
      return list(args);
    case "revoke":
      return revoke(args);
    case "limits":
      return limits(args);
    case "usage":
      return usage(args);
    case "org":
      return org(args);
    default:
      process.stderr.write(`${SCRIPT}: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      process.exit(2);
  }
}

// ---- commands ----

function create(args: string[]): Promise<void> {
  const name = `${SCRIPT} create`;
  const { values: v, positionals } = parseCli(name, CREATE_USAGE, {
    args,
    options: {
      name: { type: "string" },
      scopes: { type: "string", default: "chat,translate" },
      "budget-eur": { type: "string" },
      period: { type: "string", default: "month" },
      rpm: { type: "string" },
      tpm: { type: "string" },
      org: { type: "string" },
      json: { type: "boolean" },
    },
  });
  noPositionals(name, positionals);
  if (!v.name?.trim()) cliFail(name, "--name is required (who or what the key is for)");
  const input = {
    name: v.name.trim(),
    scopes: scopesFlag(name, v.scopes),
    budgetMicroEur: moneyFlag(name, "budget-eur", v["budget-eur"]) ?? null,
    budgetPeriod: choiceFlag(name, "period", v.period, PERIODS) as BudgetPeriod,
    rpmLimit: rateFlag(name, "rpm", v.rpm) ?? null,
    tpmLimit: rateFlag(name, "tpm", v.tpm) ?? null,
    orgId: v.org === undefined ? null : orgIdFlag(name, v.org),
  };
  return withStore(v.json, async (store, out) => {
    const { key, keyId } = await store.createKey(input);
    const record = (await store.getKey(keyId))!;
    out(
      () => `Created key ${keyId} (${describe(record)})\n\n  ${key}\n\n` + "This is the only time the key is shown: only its hash is stored, so it cannot be shown again. Copy it now.\n",
      () => ({ key, warning: "shown once: only its hash is stored, it cannot be shown again", ...keyJson(record) }),
    );
  });
}

function list(args: string[]): Promise<void> {
  const name = `${SCRIPT} list`;
  const { values: v, positionals } = parseCli(name, LIST_USAGE, { args, options: { json: { type: "boolean" } } });
  noPositionals(name, positionals);
  return withStore(v.json, async (store, out) => {
    const rows: { key: KeyRecord; spent: number; reserved: number }[] = [];
    for (const key of await store.listKeys()) {
      const b = await store.budgetState(key.keyId);
      rows.push({ key, spent: b?.spentMicroEur ?? 0, reserved: b?.reservedMicroEur ?? 0 });
    }
    out(
      () =>
        rows.length === 0
          ? "No keys.\n"
          : table(
              ["KEY ID", "NAME", "SCOPES", "BUDGET €", "PERIOD", "SPENT €", "HELD €", "RPM", "TPM", "ORG", "CREATED (UTC)", "REVOKED (UTC)"],
              rows.map(({ key: k, spent, reserved }) => [
                k.keyId,
                printable(k.name),
                k.scopes.join(","),
                k.budgetMicroEur === null ? "unlimited" : formatEur(k.budgetMicroEur),
                k.budgetPeriod,
                formatEur(spent),
                formatEur(reserved),
                k.rpmLimit === null ? "-" : String(k.rpmLimit),
                k.tpmLimit === null ? "-" : String(k.tpmLimit),
                k.orgId ?? "-",
                minute(k.createdAt),
                k.revokedAt ? minute(k.revokedAt) : "-",
              ]),
              [3, 5, 6, 7, 8],
            ),
      () => rows.map(({ key, spent, reserved }) => ({ ...keyJson(key), spent_eur: eur(spent), reserved_eur: eur(reserved) })),
    );
  });
}

function revoke(args: string[]): Promise<void> {
  const name = `${SCRIPT} revoke`;
  const { values: v, positionals } = parseCli(name, REVOKE_USAGE, { args, allowPositionals: true, options: { json: { type: "boolean" } } });
  const keyId = keyIdArg(name, positionals);
  return withStore(v.json, async (store, out) => {
    const revoked = await store.revokeKey(keyId);
    // false is either an unknown key or one revoked before: only the first is an error.
    const record = await existing(store, keyId);
    out(
      () => (revoked ? `Revoked key ${keyId} (${printable(record.name)}): refused from its next request on.\n` : `Key ${keyId} was already revoked (at ${record.revokedAt?.toISOString()}).\n`),
      () => ({ ...keyJson(record), already_revoked: !revoked }),
    );
  });
}

function limits(args: string[]): Promise<void> {
  const name = `${SCRIPT} limits`;
  const { values: v, positionals } = parseCli(name, LIMITS_USAGE, {
    args,
    allowPositionals: true,
    options: { "budget-eur": { type: "string" }, period: { type: "string" }, rpm: { type: "string" }, tpm: { type: "string" }, org: { type: "string" }, json: { type: "boolean" } },
  });
  const keyId = keyIdArg(name, positionals);
  const change: KeyChanges = {};
  if (v["budget-eur"] !== undefined) change.budgetMicroEur = v["budget-eur"] === "none" ? null : moneyFlag(name, "budget-eur", v["budget-eur"]);
  if (v.period !== undefined) change.budgetPeriod = choiceFlag(name, "period", v.period, PERIODS);
  if (v.rpm !== undefined) change.rpmLimit = v.rpm === "none" ? null : rateFlag(name, "rpm", v.rpm);
  if (v.tpm !== undefined) change.tpmLimit = v.tpm === "none" ? null : rateFlag(name, "tpm", v.tpm);
  if (v.org !== undefined) change.orgId = v.org === "none" ? null : orgIdFlag(name, v.org);
  return withStore(v.json, async (store, out) => {
    const record = (await store.setLimits(keyId, change)) ?? (await existing(store, keyId));
    const b = await store.budgetState(keyId);
    const spent = b?.spentMicroEur ?? 0;
    const over = record.budgetMicroEur !== null && spent > record.budgetMicroEur;
    out(
      () =>
        `${Object.keys(change).length ? "New limits of" : "Limits of"} key ${keyId}${record.revokedAt ? " (revoked)" : ""}: ${describe(record)}; spent this period ${formatEur(spent)} €` +
        `${over ? " (over the new budget: further requests are refused until the period ends)" : ""}\n` +
        (b?.org ? `Org ${b.org.orgId} (${printable(b.org.name)}): ${describeOrg(b.org)}\n` : ""),
      () => ({ ...keyJson(record), spent_eur: eur(spent), reserved_eur: eur(b?.reservedMicroEur ?? 0), ...(b?.org ? { org: orgJson(b.org) } : {}) }),
    );
  });
}

function org(argv: string[]): Promise<void> | undefined {
  const [command, ...args] = argv;
  switch (command) {
    case "create":
      return orgCreate(args);
    case "list":
      return orgList(args);
    case "limits":
      return orgLimits(args);
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(ORG_USAGE);
      return;
    default:
      process.stderr.write(`${SCRIPT} org: ${command === undefined ? "missing command" : `unknown command ${JSON.stringify(command)}`}\n\n${ORG_USAGE}`);
      process.exit(2);
  }
}

function orgCreate(args: string[]): Promise<void> {
  const name = `${SCRIPT} org create`;
  const { values: v, positionals } = parseCli(name, ORG_CREATE_USAGE, {
    args,
    options: { name: { type: "string" }, "budget-eur": { type: "string" }, period: { type: "string", default: "month" }, json: { type: "boolean" } },
  });
  noPositionals(name, positionals);
  if (!v.name?.trim()) cliFail(name, "--name is required (who the org is)");
  const input = { name: v.name.trim(), budgetMicroEur: moneyFlag(name, "budget-eur", v["budget-eur"]) ?? null, budgetPeriod: choiceFlag(name, "period", v.period, PERIODS) as BudgetPeriod };
  return withStore(v.json, async (store, out) => {
    const { orgId } = await store.createOrg(input);
    const o = await existingOrg(store, orgId);
    out(
      () => `Created org ${orgId} ("${printable(o.name)}", ${describeOrg(o)})\nAdd keys with \`npm run keys -- create --org ${orgId} …\` or \`limits KEY_ID --org ${orgId}\`.\n`,
      () => orgJson(o),
    );
  });
}

function orgList(args: string[]): Promise<void> {
  const name = `${SCRIPT} org list`;
  const { values: v, positionals } = parseCli(name, ORG_LIST_USAGE, { args, options: { json: { type: "boolean" } } });
  noPositionals(name, positionals);
  return withStore(v.json, async (store, out) => {
    const orgs = await store.listOrgs();
    out(
      () =>
        orgs.length === 0
          ? "No orgs.\n"
          : table(
              ["ORG ID", "NAME", "BUDGET €", "PERIOD", "SPENT €", "HELD €", "REMAINING €", "KEYS", "CREATED (UTC)"],
              orgs.map((o) => [
                o.orgId,
                printable(o.name),
                o.budgetMicroEur === null ? "unlimited" : formatEur(o.budgetMicroEur),
                o.budgetPeriod,
                formatEur(o.spentMicroEur),
                formatEur(o.reservedMicroEur),
                o.budgetMicroEur === null ? "-" : formatEur(Math.max(0, o.budgetMicroEur - o.spentMicroEur - o.reservedMicroEur)),
                String(o.keyCount),
                minute(o.createdAt),
              ]),
              [2, 4, 5, 6, 7],
            ),
      () => orgs.map(orgJson),
    );
  });
}

function orgLimits(args: string[]): Promise<void> {
  const name = `${SCRIPT} org limits`;
  const { values: v, positionals } = parseCli(name, ORG_LIMITS_USAGE, {
    args,
    allowPositionals: true,
    options: { "budget-eur": { type: "string" }, period: { type: "string" }, json: { type: "boolean" } },
  });
  if (positionals.length !== 1) cliFail(name, positionals.length ? `expected one ORG_ID, got ${positionals.length} arguments` : "missing ORG_ID");
  const orgId = orgIdFlag(name, positionals[0]);
  const change: Partial<OrgLimits> = {};
  if (v["budget-eur"] !== undefined) change.budgetMicroEur = v["budget-eur"] === "none" ? null : moneyFlag(name, "budget-eur", v["budget-eur"]);
  if (v.period !== undefined) change.budgetPeriod = choiceFlag(name, "period", v.period, PERIODS);
  return withStore(v.json, async (store, out) => {
    const o = (await store.setOrgLimits(orgId, change)) ?? (await existingOrg(store, orgId));
    const over = o.budgetMicroEur !== null && o.spentMicroEur > o.budgetMicroEur;
    out(
      () =>
        `${Object.keys(change).length ? "New limits of" : "Limits of"} org ${orgId} ("${printable(o.name)}"): ${describeOrg(o)}` +
        `${over ? " (over the new budget: its keys' further requests are refused until the period ends)" : ""}\n`,
      () => orgJson(o),
    );
  });
}

function usage(args: string[]): Promise<void> {
  const name = `${SCRIPT} usage`;
  const { values: v, positionals } = parseCli(name, USAGE_USAGE, {
    args,
    allowPositionals: true,
    options: { from: { type: "string" }, to: { type: "string" }, json: { type: "boolean" } },
  });
  const keyId = keyIdArg(name, positionals);
  const today = new Date().toISOString().slice(0, 10);
  const from = dateFlag(name, "from", v.from) ?? `${today.slice(0, 8)}01`;
  const to = dateFlag(name, "to", v.to) ?? today;
  if (from > to) cliFail(name, `--from ${from} is after --to ${to}`);
  return withStore(v.json, async (store, out) => {
    await existing(store, keyId);
    const days = await store.usageByDay(keyId, from, to);
    const total = days.reduce((t, d) => ({ requests: t.requests + d.requests, cost: t.cost + d.costMicroEur, saving: t.saving + d.savingMicroEur }), { requests: 0, cost: 0, saving: 0 });
    out(
      () =>
        days.length === 0
          ? `No usage for key ${keyId} from ${from} to ${to}.\n`
          : table(
              ["DAY", "MODEL", "REQUESTS", "PROMPT TOK", "COMPLETION TOK", "TARGET PASSES", "COST €", "SAVING €"],
              days.map((d) => [d.day, printable(d.model), String(d.requests), String(d.promptTokens), String(d.completionTokens), String(d.targetPasses), formatEur(d.costMicroEur), formatEur(d.savingMicroEur)]),
              [2, 3, 4, 5, 6, 7],
            ) + `Total ${from} to ${to}: ${total.requests} request(s), ${formatEur(total.cost)} €, saving ${formatEur(total.saving)} €\n`,
      () => ({
        key_id: keyId,
        from,
        to,
        days: days.map((d) => ({
          day: d.day,
          model: d.model,
          requests: d.requests,
          prompt_tokens: d.promptTokens,
          completion_tokens: d.completionTokens,
          target_passes: d.targetPasses,
          cost_eur: eur(d.costMicroEur),
          saving_eur: eur(d.savingMicroEur),
        })),
        total: { requests: total.requests, cost_eur: eur(total.cost), saving_eur: eur(total.saving) },
      }),
    );
  });
}

// ---- the database ----

/** Opens the store, runs `fn`, and always closes it (an open pool or PGlite would keep the process alive). */
async function withStore(json: boolean | undefined, fn: (store: AccountStore, out: Out) => Promise<void>): Promise<void> {
  const url = process.env.BILLING_DATABASE_URL?.trim();
  if (!url) cliFail(SCRIPT, `BILLING_DATABASE_URL is not set.\n${DB_HELP}`);
  // In memory, every key would vanish when this process exits — printed once and never usable.
  if (url === "pglite:") cliFail(SCRIPT, `BILLING_DATABASE_URL=pglite: is in memory: nothing would persist.\n${DB_HELP}`);
  if (!/^(postgres(ql)?:\/\/|pglite:)/.test(url)) cliFail(SCRIPT, `BILLING_DATABASE_URL must be postgres://… or pglite:<directory>.\n${DB_HELP}`);
  let opened: OpenedAccountStore | undefined;
  try {
    opened = await openAccountStore(url);
    if (!json) process.stderr.write(`(${opened.label})\n`);
    await fn(opened.store, (human, machine) => process.stdout.write(json ? `${JSON.stringify(machine(), null, 2)}\n` : human()));
  } finally {
    await opened?.db.close();
  }
}

class UnknownKey extends Error {}

async function existingOrg(store: AccountStore, orgId: string): Promise<OrgState> {
  const o = await store.getOrg(orgId);
  if (!o) throw new UnknownOrgError(orgId);
  return o;
}

async function existing(store: AccountStore, keyId: string): Promise<KeyRecord> {
  const record = await store.getKey(keyId);
  if (!record) throw new UnknownKey(`no key ${keyId} (see \`npm run keys -- list\`)`);
  return record;
}

// ---- arguments ----

function noPositionals(name: string, positionals: string[]): void {
  if (positionals.length) cliFail(name, `unexpected argument ${JSON.stringify(positionals[0])}`);
}

function keyIdArg(name: string, positionals: string[]): string {
  if (positionals.length !== 1) cliFail(name, positionals.length ? `expected one KEY_ID, got ${positionals.length} arguments` : "missing KEY_ID");
  const id = positionals[0];
  // Do not echo a pasted secret back into logs: say what went wrong without it.
  if (id.startsWith("sk-alia-")) cliFail(name, "expected a key id, not the key: the id is the 12 characters after sk-alia- (see `list`)");
  if (!KEY_ID.test(id)) cliFail(name, `not a key id: ${JSON.stringify(id)} (12 characters of a-z and 2-7; see \`list\`)`);
  return id;
}

function orgIdFlag(name: string, value: string): string {
  if (!ORG_ID.test(value)) cliFail(name, `not an org id: ${JSON.stringify(value)} (org- and 12 characters of a-z and 2-7; see \`org list\`)`);
  return value;
}

function scopesFlag(name: string, value: string): Scope[] {
  const scopes = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || bad.length) cliFail(name, `--scopes must be a comma-separated list of ${SCOPES.join(", ")}, got ${JSON.stringify(value)}`);
  return [...new Set(scopes)] as Scope[];
}

/** Euros with at most 6 decimals as micro-euros. A decimal pattern, not Number(): "1e3", "0x10" and "" are typos. */
function moneyFlag(name: string, flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const micro = /^\d{1,10}(\.\d{1,6})?$/.test(value.trim()) ? toMicro(Number(value)) : Number.NaN;
  if (!Number.isSafeInteger(micro)) cliFail(name, `--${flag} must be euros with at most 6 decimals (e.g. 10 or 0.25)${flag === "budget-eur" && name.endsWith("limits") ? " or none" : ""}, got ${JSON.stringify(value)}`);
  return micro;
}

function rateFlag(name: string, flag: string, value: string | undefined): number | undefined {
  const n = intFlag(name, flag, value, 1);
  if (n !== undefined && n > MAX_RATE) cliFail(name, `--${flag} must be at most ${MAX_RATE}, got ${n}`);
  return n;
}

function dateFlag(name: string, flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  // Round-tripping through Date rejects 2025-02-30 as well as malformed text.
  const ok = /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString().slice(0, 10) === value;
  if (!ok) cliFail(name, `--${flag} must be a date YYYY-MM-DD, got ${JSON.stringify(value)}`);
  return value;
}

// ---- output ----

function describe(k: KeyRecord): string {
  const budget = k.budgetMicroEur === null ? "no budget" : `budget ${formatEur(k.budgetMicroEur)} € ${k.budgetPeriod === "none" ? "in total" : `per ${k.budgetPeriod} (UTC)`}`;
  const rate = (n: number | null, unit: string) => (n === null ? `no ${unit} limit` : `${n} ${unit}`);
  return `"${printable(k.name)}", scopes ${k.scopes.join(",")}, ${budget}, ${rate(k.rpmLimit, "rpm")}, ${rate(k.tpmLimit, "tpm")}${k.orgId ? `, org ${k.orgId}` : ""}`;
}

function describeOrg(o: OrgState): string {
  const budget = o.budgetMicroEur === null ? "no budget" : `budget ${formatEur(o.budgetMicroEur)} € ${o.budgetPeriod === "none" ? "in total" : `per ${o.budgetPeriod} (UTC)`}`;
  return `${budget}, spent this period ${formatEur(o.spentMicroEur)} €, held ${formatEur(o.reservedMicroEur)} €, ${o.keyCount} key(s)`;
}

/** A name as one table cell: control characters (a newline in a name) would break the rows. */
function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return s.replace(/[\u0000-\u001f\u007f]/g, "?");
}

function minute(d: Date): string {
  return d.toISOString().slice(0, 16).replace("T", " ");
}

/** Columns padded to their widest cell; the `right` columns (numbers) aligned right. */
function table(head: string[], rows: string[][], right: number[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return `${[head, ...rows].map(line).join("\n")}\n`;
}

try {
  await main(process.argv.slice(2));
} catch (e) {
  // A known-bad request (unknown key) or a database error: exit 1, the message without a stack.
  const known = e instanceof UnknownKey || e instanceof UnknownOrgError;
  process.stderr.write(`${SCRIPT}: ${known ? "" : "error: "}${(e as Error).message}${e instanceof UnknownOrgError ? " (see `npm run keys -- org list`)" : ""}\n`);
  process.exit(1);
}
