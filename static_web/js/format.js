// Formatting values and times for display, and converting form inputs to API values.

/**
 * Show a value as what it is, by the datatype of its measure or identifier:
 * integers without decimals, floats with them, booleans as true/false, strings as text.
 * JSON cannot tell 3 from 3.0, so the datatype decides.
 */
export function formatValue(value, datatype) {
  if (value === null || value === undefined) return "—";
  switch (datatype) {
    case "boolean":
      return value === true || value === "true" ? "true" : "false";
    case "integer":
      return Number.isFinite(value) ? String(Math.trunc(value)) : String(value);
    case "float":
      if (typeof value !== "number") return String(value);
      if (Number.isInteger(value)) return value.toFixed(1);
      return String(Number(value.toPrecision(10)));
    case "string":
      return String(value);
    default:
      if (typeof value === "boolean") return value ? "true" : "false";
      return String(value);
  }
}

/** Guess a datatype for a value when the measure is unknown. */
export function datatypeOf(value) {
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "string") return "string";
  if (Number.isInteger(value)) return "integer";
  return "float";
}

/** Convert text typed into a form to the JSON value a datatype needs. */
export function parseTyped(text, datatype) {
  switch (datatype) {
    case "integer": {
      const n = Number(text);
      if (!Number.isInteger(n)) throw new Error(`"${text}" is not a whole number`);
      return n;
    }
    case "float": {
      const n = Number(text);
      if (text === "" || !Number.isFinite(n)) throw new Error(`"${text}" is not a number`);
      return n;
    }
    case "boolean":
      return text === true || String(text).toLowerCase() === "true" || text === "on";
    default:
      return String(text);
  }
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** "2026-11-27 12:00:05" in the browser's time zone. */
export function formatTime(value) {
  if (!value) return "—";
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The browser's time zone name, shown beside times. */
export function timeZoneName() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  } catch {
    return "local time";
  }
}

/** "3 minutes ago", "2 days ago", "in 5 hours". */
export function timeAgo(value, now = Date.now()) {
  const t = value instanceof Date ? value.getTime() : new Date(value).getTime();
  const seconds = Math.round((now - t) / 1000);
  const abs = Math.abs(seconds);
  const units = [
    ["year", 365 * 86400],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
    ["second", 1],
  ];
  if (abs < 5) return "just now";
  for (const [name, size] of units) {
    if (abs >= size) {
      const n = Math.floor(abs / size);
      const label = `${n} ${name}${n === 1 ? "" : "s"}`;
      return seconds >= 0 ? `${label} ago` : `in ${label}`;
    }
  }
  return "just now";
}

/** Value for an <input type="datetime-local"> from a Date (local time, minutes). */
export function toLocalInput(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** ISO UTC string for the API from a datetime-local input value. */
export function localInputToIso(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new Error(`"${value}" is not a date and time`);
  return d.toISOString();
}

/** A file-name-safe stamp. */
export function fileStamp(date = new Date()) {
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}-${pad(date.getHours())}${pad(date.getMinutes())}`;
}

/** Pretty JSON for display. */
export function formatJson(value) {
  if (value === undefined) return "";
  return JSON.stringify(value, null, 2);
}
