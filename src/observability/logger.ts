/**
 * Plain logfmt lines on stderr (journald and `docker logs` friendly).
 * Callers pass fields explicitly; nothing here ever serialises a request's
 * headers, so credentials and tokens cannot reach the log by accident.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
type Fields = Record<string, string | number | boolean | undefined | null>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

export function createLogger(level: LogLevel, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const emit = (at: LogLevel) => (message: string, fields: Fields = {}) => {
    if (ORDER[at] < ORDER[level]) return;
    let line = `time=${new Date().toISOString()} level=${at} msg=${quote(message)}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined && value !== null) line += ` ${key}=${quote(String(value))}`;
    }
    write(`${line}\n`);
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

function quote(value: string): string {
  return /^[A-Za-z0-9._:/@+=&%,-]+$/.test(value) ? value : JSON.stringify(value);
}
