/**
 * Where configuration comes from, in increasing precedence: the embedded
 * defaults, a TOML file, `DOCXY_<SECTION>_<KEY>` environment variables, then
 * command-line flags. The result is validated once, sizes and durations
 * become numbers (bytes, milliseconds), and every problem becomes one line
 * naming the key as the user wrote it.
 */
import { existsSync } from "node:fs";
import { Value } from "@sinclair/typebox/value";
import { TransformKind, type TSchema } from "@sinclair/typebox";
import { ConfigSchema, type Config, type CredentialEntry } from "./schema";
import { accountsFrom } from "../upstream/accounts";
import { checkSemantics } from "./validate";

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

export interface ConfigRequest {
  /** Explicit file (`-c`); otherwise DOCXY_CONFIG, WHARF_CONFIG, then ./config/default(.toml). */
  path?: string;
  env: Record<string, string | undefined>;
  /** Flag values as `section.key` → raw string. */
  overrides?: Record<string, string>;
}

export interface LoadedConfig {
  config: Config;
  /** The file read, or "embedded defaults". */
  source: string;
  warnings: string[];
}

/** Wharf reads `config/default` relative to the working directory, extension optional. */
const WHARF_DEFAULT_PATHS = ["config/default.toml", "config/default"];

export async function loadConfig(request: ConfigRequest): Promise<LoadedConfig> {
  const explicit = request.path ?? request.env.DOCXY_CONFIG ?? request.env.WHARF_CONFIG;
  const path = explicit !== undefined ? resolveExplicit(explicit) : WHARF_DEFAULT_PATHS.find((p) => existsSync(p));
  const raw: Record<string, unknown> = path ? await readToml(path) : {};
  const warnings = unknownKeys(ConfigSchema, raw, "");

  const problems: string[] = [];
  applyStrings(raw, environmentOverrides(request.env), problems);
  applyStrings(raw, request.overrides ?? {}, problems);

  const written = Value.Default(ConfigSchema, listsFromStrings(ConfigSchema, Value.Clone(raw)));
  for (const error of Value.Errors(ConfigSchema, written)) {
    const message = isStringList(error.schema) ? "Expected a string or an array of strings" : error.message;
    problems.push(`${keyName(error.path)}: ${message} (got ${JSON.stringify(error.value)})`);
  }
  // Each stage runs on what passed the one before, so it can trust the types: the shape, then
  // sizes and durations, then what the schema cannot express.
  if (problems.length === 0) {
    const config = decodeAll(ConfigSchema, written, "", problems) as Config;
    if (problems.length === 0) problems.push(...checkSemantics(config, request.env), ...credentialProblems(config, request.env));
    if (problems.length === 0) return { config, source: path ?? "embedded defaults", warnings };
  }
  throw new ConfigError(problems.map((p) => `${path ?? "config"}: ${p}`));
}

/**
 * Every list of strings may be written as one string: `bind = "127.0.0.1"`
 * is `bind = ["127.0.0.1"]`. Done here, on the value as written, for every
 * such key the schema has, wherever it sits (a section, `[cache.s3]`, each
 * `[[registry.upstreams]]` entry), so no key can be forgotten; the schema
 * keeps saying "array" and the loaded Config holds arrays only. The
 * environment and flags split their text on commas already (fromString).
 */
function listsFromStrings(schema: TSchema, value: unknown): unknown {
  if (isStringList(schema) && typeof value === "string") return [value];
  if (schema.type === "array" && Array.isArray(value)) {
    value.forEach((item, i) => (value[i] = listsFromStrings(schema.items as TSchema, item)));
  } else if (tableSchema(schema) && typeof value === "object" && value !== null) {
    const table = value as Record<string, unknown>;
    for (const [name, child] of Object.entries(tableSchema(schema)!.properties)) {
      if (name in table) table[name] = listsFromStrings(child, table[name]);
    }
  }
  return value;
}

function isStringList(schema: TSchema): boolean {
  return schema.type === "array" && takesString(schema.items as TSchema | undefined);
}

/** A string, or a union with one (`fallbacks`: a URL or a table). */
function takesString(schema: TSchema | undefined): boolean {
  return schema?.type === "string" || ((schema?.anyOf as TSchema[] | undefined) ?? []).some(takesString);
}

/**
 * Runs the schema's decodes (sizes and durations, schema.ts) on every value
 * in place, naming each one that fails as the TOML spells it; TypeBox's
 * Value.Decode would stop at the first.
 */
function decodeAll(schema: TSchema, value: unknown, key: string, problems: string[]): unknown {
  const transform = (schema as { [TransformKind]?: { Decode: (value: unknown) => unknown } })[TransformKind];
  if (transform) {
    try {
      return transform.Decode(value);
    } catch (error) {
      problems.push(`${key}: ${(error as Error).message}`);
      return value;
    }
  }
  if (schema.type === "array" && Array.isArray(value)) {
    value.forEach((item, i) => (value[i] = decodeAll(schema.items as TSchema, item, `${key}[${i}]`, problems)));
  } else if (schema.type === "object" && typeof value === "object" && value !== null) {
    const table = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, TSchema>;
    // A record (`tag_ttl_overrides`) has one schema for all its values, under keys the user chose.
    const [anyKey] = Object.values(schema.patternProperties ?? {}) as TSchema[];
    for (const [name, child] of Object.entries(table)) {
      if (properties[name]) table[name] = decodeAll(properties[name], child, key ? `${key}.${name}` : name, problems);
      else if (anyKey) table[name] = decodeAll(anyKey, child, `${key}.${JSON.stringify(name)}`, problems);
    }
  }
  return value;
}

function resolveExplicit(path: string): string {
  if (existsSync(path)) return path;
  if (existsSync(`${path}.toml`)) return `${path}.toml`; // Wharf: the extension may be omitted
  throw new ConfigError([`${path}: config file not found`]);
}

async function readToml(path: string): Promise<Record<string, unknown>> {
  try {
    return Bun.TOML.parse(await Bun.file(path).text()) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError([`${path}: not valid TOML: ${(error as Error).message}`]);
  }
}

/**
 * `DOCXY_SERVER_HTTP_PORT=8080` → `server.http_port`, and the keys of a table inside a section
 * likewise: `DOCXY_CACHE_S3_BUCKET` → `cache.s3.bucket`. `DOCXY_REGISTRY_UPSTREAMS` takes a JSON array.
 */
function environmentOverrides(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (schema: TSchema, path: string[]) => {
    for (const [key, child] of Object.entries(tableSchema(schema)?.properties ?? {})) {
      if (tableSchema(child)) visit(child, [...path, key]);
      else {
        const value = env[`DOCXY_${[...path, key].join("_")}`.toUpperCase()];
        if (value !== undefined) out[[...path, key].join(".")] = value;
      }
    }
  };
  for (const [section, schema] of Object.entries(ConfigSchema.properties)) visit(schema, [section]);
  return out;
}

/** Writes `section.key` (or `section.table.key`) string values into `raw`, converted to the type the schema expects there. */
function applyStrings(raw: Record<string, unknown>, values: Record<string, string>, problems: string[]): void {
  for (const [dotted, text] of Object.entries(values)) {
    const names = dotted.split(".");
    const key = names.pop()!;
    let schema: TSchema | undefined = ConfigSchema;
    let table: Record<string, unknown> | undefined = raw;
    for (const name of names) {
      schema = tableSchema(schema)?.properties[name];
      if (!tableSchema(schema) || !table) {
        schema = undefined;
        break;
      }
      const child: unknown = (table[name] ??= {});
      // A key written as something else than a table is the schema check's to report.
      table = typeof child === "object" && child !== null && !Array.isArray(child) ? (child as Record<string, unknown>) : undefined;
    }
    const keySchema = names.length > 0 ? tableSchema(schema)?.properties[key] : undefined;
    if (!keySchema || tableSchema(keySchema)) {
      problems.push(`${dotted}: unknown key`);
      continue;
    }
    if (!table) continue;
    try {
      table[key] = fromString(keySchema, text);
    } catch {
      problems.push(`${dotted}: cannot read ${JSON.stringify(text)} as ${keySchema.type}`);
    }
  }
}

function fromString(schema: TSchema, text: string): unknown {
  switch (schema.type) {
    case "integer":
    case "number":
      return text.trim() === "" ? text : Number(text);
    case "boolean":
      if (/^(true|1|yes|on)$/i.test(text)) return true;
      if (/^(false|0|no|off)$/i.test(text)) return false;
      return text;
    case "array":
      return text.trim().startsWith("[") ? JSON.parse(text) : text.split(",").map((s) => s.trim()).filter(Boolean);
    default:
      return text;
  }
}

function objectSchema(schema: TSchema | undefined): { properties: Record<string, TSchema> } | undefined {
  return schema && schema.type === "object" ? (schema as unknown as { properties: Record<string, TSchema> }) : undefined;
}

/** A table with named keys (a section, or `[cache.s3]`); a record such as `tag_ttl_overrides` is a value. */
function tableSchema(schema: TSchema | undefined): { properties: Record<string, TSchema> } | undefined {
  const table = objectSchema(schema);
  return table?.properties ? table : undefined;
}

/** Unknown keys are warnings, not errors: Wharf ignores them too, but a typo deserves a word. */
function unknownKeys(schema: TSchema, value: unknown, prefix: string): string[] {
  const properties = objectSchema(schema)?.properties;
  if (!properties || typeof value !== "object" || value === null || Array.isArray(value)) {
    if (schema.type === "array" && Array.isArray(value)) {
      return value.flatMap((item, i) => unknownKeys(schema.items as TSchema, item, `${prefix}[${i}]`));
    }
    return [];
  }
  return Object.entries(value).flatMap(([key, child]) => {
    const name = prefix ? `${prefix}.${key}` : key;
    const childSchema = properties[key];
    return childSchema ? unknownKeys(childSchema, child, name) : [`unknown key ${name} is ignored`];
  });
}

/** TypeBox paths (`/registry/upstreams/0/name`) as the TOML spells them (`registry.upstreams[0].name`). */
export function keyName(path: string): string {
  return path
    .split("/")
    .filter(Boolean)
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`))
    .join("")
    .replace(/^\./, "");
}

/** Each upstream account must have exactly one readable secret (never echoed in the message). */
function credentialProblems(config: Config, env: Record<string, string | undefined>): string[] {
  const { upstreams, fallbacks } = config.registry;
  const lists: [string, CredentialEntry[]][] = [
    ...upstreams.map((entry, i): [string, CredentialEntry[]] => [`registry.upstreams[${i}].credentials`, entry.credentials ?? []]),
    ...[...upstreams.map((entry, i) => [`registry.upstreams[${i}].fallbacks`, entry.fallbacks ?? []] as const), ["registry.fallbacks", fallbacks] as const].flatMap(
      ([key, entries]) => entries.map((entry, j): [string, CredentialEntry[]] => [`${key}[${j}].credentials`, typeof entry === "string" ? [] : (entry.credentials ?? [])]),
    ),
  ];
  return lists.flatMap(([key, entries]) => {
    try {
      accountsFrom(entries, key, env);
      return [];
    } catch (error) {
      return [(error as Error).message];
    }
  });
}
