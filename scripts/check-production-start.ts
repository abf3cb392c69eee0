// CI check of a production install (`npm run check:production-start`): copies the committed tree
// (`git archive HEAD`; `--worktree`: the working tree's tracked and untracked-but-not-ignored files) into
// a temporary folder, runs `npm ci --omit=dev` there, starts `npm start` (PORT=0, its embedded verifier
// on a free loopback port), waits for "listening on", asks /v1/models and one chat completion, sends
// SIGTERM to the npm process as a supervisor would, and checks that npm exits 0, that the edge and the
// verifier both logged their shutdown and that neither process is left.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { intFlag, parseCli } from "./cli.ts";

const SCRIPT = "check-production-start";
const USAGE = `usage: npm run check:production-start -- [--worktree] [--keep] [--timeout-s 120]
  --worktree     test the working tree (tracked + untracked files git does not ignore) instead of HEAD
  --keep         keep the temporary copy (its path is printed)
  --timeout-s    how long the server may take to print "listening on" (default 120)`;
const { values } = parseCli(SCRIPT, USAGE, {
  options: { worktree: { type: "boolean", default: false }, keep: { type: "boolean", default: false }, "timeout-s": { type: "string", default: "120" } },
});
const startTimeoutMs = (intFlag(SCRIPT, "timeout-s", values["timeout-s"], 1) ?? 120) * 1000;
const ROOT = path.resolve(import.meta.dirname, "..");

const log = (line: string) => process.stderr.write(`[${SCRIPT}] ${line}\n`);

/** The environment for nested npm commands: without what the `npm run` that started us exported about this checkout. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const dropped = /^(npm_package_|npm_lifecycle_|npm_command$|npm_config_local_prefix$|npm_config_allow_scripts$|INIT_CWD$)/;
  for (const [k, v] of Object.entries(process.env)) if (!dropped.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: childEnv({}), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const take = (b: Buffer) => {
      out += b;
      process.stderr.write(b);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}`))));
  });
}

async function copyTree(dest: string): Promise<void> {
  if (!values.worktree) {
    await new Promise<void>((resolve, reject) => {
      const git = spawn("git", ["archive", "--format=tar", "HEAD"], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
      const tar = spawn("tar", ["-x", "-f", "-", "-C", dest], { stdio: ["pipe", "inherit", "inherit"] });
      git.stdout.pipe(tar.stdin);
      let left = 2;
      const done = (what: string) => (code: number | null) => {
        if (code !== 0) reject(new Error(`${what} exited with ${code}`));
        else if (--left === 0) resolve();
      };
      git.on("close", done("git archive"));
      tar.on("close", done("tar"));
    });
    return;
  }
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 })
    .split("\0")
    .filter((f) => f && existsSync(path.join(ROOT, f)));
  for (const f of files) await cp(path.join(ROOT, f), path.join(dest, f), { recursive: true });
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Every process below `pid`, with its command line. */
function descendants(pid: number): { pid: number; args: string }[] {
  const rows = execFileSync("ps", ["-A", "-o", "pid=,ppid=,args="], { encoding: "utf8" })
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] }));
  const found: { pid: number; args: string }[] = [];
  const walk = (parent: number) => {
    for (const r of rows) {
      if (r.ppid === parent) {
        found.push({ pid: r.pid, args: r.args });
        walk(r.pid);
      }
    }
  };
  walk(pid);
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function json(url: string, init?: RequestInit): Promise<Record<string, unknown>> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${init?.method ?? "GET"} ${url}: HTTP ${r.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "alia-edge-production-"));
  let npm: ChildProcess | undefined;
  let tree: { pid: number; args: string }[] = [];
  try {
    log(`copying ${values.worktree ? "the working tree" : "HEAD"} to ${dir}`);
    await copyTree(dir);

    log("npm ci --omit=dev");
    const install = await run("npm", ["ci", "--omit=dev"], dir);
    for (const bad of ["Unknown project config", "not yet covered by allowScripts"]) {
      if (install.includes(bad)) throw new Error(`npm ci printed "${bad}"`);
    }
    for (const dev of ["vitest", "typescript", "wrangler"]) {
      if (existsSync(path.join(dir, "node_modules", dev))) throw new Error(`npm ci --omit=dev installed the devDependency ${dev}`);
    }

    const poolPort = await freeLoopbackPort();
    log(`npm start (PORT=0, POOL_NODES=http://127.0.0.1:${poolPort})`);
    const child = spawn("npm", ["start"], { cwd: dir, env: childEnv({ PORT: "0", HOST: "127.0.0.1", POOL_NODES: `http://127.0.0.1:${poolPort}` }), stdio: ["ignore", "pipe", "pipe"] });
    npm = child;
    let output = "";
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening on" within ${startTimeoutMs / 1000} s`)), startTimeoutMs);
      const take = (b: Buffer) => {
        output += b;
        process.stderr.write(b);
        const m = /listening on (http:\/\/\S+)/.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout?.on("data", take);
      child.stderr?.on("data", take);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`npm start exited with ${code} before listening`));
      });
    });

    tree = descendants(child.pid!);
    const edge = tree.find((p) => p.args.includes("src/node.ts"));
    const verifier = tree.find((p) => p.args.includes(path.join("gpu-backend", "main.ts")));
    if (!edge || !verifier) throw new Error(`expected an edge and a verifier process under npm, found:\n${tree.map((p) => `  ${p.pid} ${p.args}`).join("\n")}`);
    log(`edge pid ${edge.pid}, verifier pid ${verifier.pid}`);

    const models = await json(`${url}/v1/models`);
    const model = (models.data as { id: string }[] | undefined)?.[0]?.id;
    if (!model) throw new Error(`/v1/models lists no model: ${JSON.stringify(models)}`);
    const chat = await json(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "Hola" }], max_tokens: 8, temperature: 0 }),
    });
    const content = (chat.choices as { message?: { content?: unknown } }[] | undefined)?.[0]?.message?.content;
    const tokens = (chat.usage as { completion_tokens?: unknown } | undefined)?.completion_tokens;
    if (typeof content !== "string" || typeof tokens !== "number" || tokens < 1 || tokens > 8) throw new Error(`unexpected chat completion: ${JSON.stringify(chat)}`);
    log(`${model} answered ${JSON.stringify(content)} (${tokens} tokens)`);

    log(`SIGTERM to npm (pid ${child.pid})`);
    child.kill("SIGTERM");
    const code = await Promise.race([exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 40_000))]);
    if (code === "timeout") throw new Error("npm start still running 40 s after SIGTERM");
    // Helpers such as tsx's esbuild service leave when their parent's pipe closes: give them a moment.
    for (let i = 0; i < 50 && tree.some((p) => alive(p.pid)); i++) await new Promise((r) => setTimeout(r, 100));
    const left = tree.filter((p) => alive(p.pid));
    const problems = [
      ...(code === 0 ? [] : [`npm exited with ${code}, not 0`]),
      ...["alia-edge shutting down", "alia-edge verifier shutting down", "alia-edge verifier stopped", "alia-edge stopped"].filter((l) => !output.includes(l)).map((l) => `no "${l}" line`),
      ...left.map((p) => `process ${p.pid} still running: ${p.args}`),
    ];
    if (problems.length) throw new Error(problems.join("; "));
    log("ok: production install started, answered, and stopped cleanly on SIGTERM");
  } finally {
    if (npm && npm.exitCode === null && npm.signalCode === null) npm.kill("SIGKILL");
    for (const p of tree) if (alive(p.pid)) process.kill(p.pid, "SIGKILL");
    if (values.keep) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  log(`FAILED: ${(e as Error).message}`);
  process.exit(1);
});
