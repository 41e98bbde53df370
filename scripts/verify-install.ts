// Checks an installed node_modules against package-lock.json: every package the lock names (for
// the dependency set installed) is there at the locked version, and nothing else is, except the
// platform builds a locked package lists as optional dependencies at its own version.
//
// Why: the install cannot be `npm ci`. @chainsafe/libp2p-quic lists prebuilt packages for other
// platforms that the registry this lock was made against does not carry, so the lock cannot name
// them and `npm ci` refuses it as out of sync. `npm install` honours the lock for what it names
// (and adds the one prebuilt for the build's platform where the registry has it); this check
// makes that a guarantee instead of a hope. Used by the Containerfile and the prod-install test.
//
//   bun scripts/verify-install.ts [--omit=dev] [DIR]

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface LockEntry {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  link?: boolean;
  os?: string[];
  cpu?: string[];
  libc?: string[];
  optionalDependencies?: Record<string, string>;
}

export interface Lockfile {
  packages: Record<string, LockEntry>;
}

/** Installed packages by lock-style path ("node_modules/a", "node_modules/a/node_modules/b"). */
export type Installed = ReadonlyMap<string, string>;

/** Basename of a lock path: "node_modules/@s/p/node_modules/q" -> "q". */
function nameOf(path: string): string {
  const i = path.lastIndexOf("node_modules/");
  return path.slice(i + "node_modules/".length);
}

/** Problems, one line each; empty when the install matches the lock. */
export function compareInstall(lock: Lockfile, installed: Installed, options: { omitDev: boolean; platform?: string; arch?: string; libc?: string }): string[] {
  const problems: string[] = [];
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  const libc = options.libc ?? hostLibc();
  const wanted = new Map<string, LockEntry>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "" || entry.link) continue;
    if (options.omitDev && entry.dev) continue;
    wanted.set(path, entry);
  }
  for (const [path, entry] of wanted) {
    const have = installed.get(path);
    const fitsHere = (!entry.os || entry.os.includes(platform)) && (!entry.cpu || entry.cpu.includes(arch)) && (!entry.libc || entry.libc.includes(libc));
    if (have === undefined) {
      if (!entry.optional || fitsHere) problems.push(`missing: ${path}@${entry.version} (in the lock)`);
    } else if (have !== entry.version) {
      problems.push(`wrong version: ${path} is ${have}, the lock says ${entry.version}`);
    }
  }
  // Optional platform builds the lock could not name: allowed at the version their parent pins.
  const platformBuilds = new Map<string, string>();
  for (const entry of wanted.values()) {
    for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) platformBuilds.set(name, version);
  }
  for (const [path, version] of installed) {
    if (wanted.has(path)) continue;
    const pinned = platformBuilds.get(nameOf(path));
    if (pinned === version) continue;
    problems.push(lock.packages[path]?.dev ? `dev package installed: ${path}@${version}` : `not in the lock: ${path}@${version}`);
  }
  return problems;
}

/** "musl" where the musl loader is installed (Alpine and friends), else "glibc". */
function hostLibc(): string {
  try {
    return readdirSync("/lib").some((f) => f.startsWith("ld-musl-")) ? "musl" : "glibc";
  } catch {
    return "glibc";
  }
}

/** Walks node_modules (scoped and nested folders) into lock-style paths with their versions. */
export function readInstalled(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (modules: string, prefix: string) => {
    if (!existsSync(modules)) return;
    for (const name of readdirSync(modules)) {
      if (name.startsWith(".")) continue;
      const names = name.startsWith("@") ? readdirSync(join(modules, name)).map((n) => `${name}/${n}`) : [name];
      for (const pkg of names) {
        const path = `${prefix}node_modules/${pkg}`;
        const file = join(modules, pkg, "package.json");
        if (!existsSync(file)) continue;
        out.set(path, String(JSON.parse(readFileSync(file, "utf8")).version));
        walk(join(modules, pkg, "node_modules"), `${path}/`);
      }
    }
  };
  walk(join(dir, "node_modules"), "");
  return out;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const omitDev = args.includes("--omit=dev");
  const dir = args.find((a) => !a.startsWith("--")) ?? ".";
  const lock = JSON.parse(readFileSync(join(dir, "package-lock.json"), "utf8")) as Lockfile;
  const problems = compareInstall(lock, readInstalled(dir), { omitDev });
  if (problems.length > 0) {
    console.error(`verify-install: node_modules does not match package-lock.json:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`verify-install: ${readInstalled(dir).size} packages match package-lock.json${omitDev ? " (production set)" : ""}`);
}
