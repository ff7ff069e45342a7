/**
 * Credentials never reach a log line, an error message or a report. URLs are the usual carrier:
 * `mongodb://user:password@host/` and `https://user:password@clickhouse:8443/?password=…`.
 */
const SECRET_QUERY_KEYS = /^(password|pass|pwd|passwd|secret|token|access_token|api_key|apikey|key)$/i;

const REDACTED = "***";

/**
 * The URL with any password replaced by `***`: in the userinfo (`user:***@`, the user name kept so the
 * line still says who connected) and in query parameters named like a secret. Works on strings that do
 * not parse as URLs (a config error shows the bad value), and on multi-host MongoDB URIs.
 */
export function redactUrl(url: string): string {
  const userinfo = (_whole: string, scheme: string, info: string) => {
    const colon = info.indexOf(":");
    return colon < 0 ? `${scheme}${info}@` : `${scheme}${info.slice(0, colon)}:${REDACTED}@`;
  };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)/;
  let out = url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)@/, userinfo);
  // A password with a "/", "?" or "#" not percent-encoded (invalid, but what a refused value shows) ends
  // the match above early: everything up to the last "@" goes instead, which may hide more than the
  // password (an "@" further on), never less.
  if (out === url && scheme.test(url) && url.indexOf("@") > 0)
    out = url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*)@/, (whole, prefix: string, info: string) =>
      info.includes(":") ? userinfo(whole, prefix, info) : `${prefix}${REDACTED}@`,
    );
  out = out.replace(/([?&;])([^=&;#]+)=([^&;#]*)/g, (whole, sep: string, key: string) =>
    SECRET_QUERY_KEYS.test(decodeURIComponentSafe(key)) ? `${sep}${key}=${REDACTED}` : whole,
  );
  return out;
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Variables whose whole value is a secret: shown as `<redacted>` in config errors. */
function isSecretVariable(name: string): boolean {
  return /PASSWORD|SECRET|TOKEN/.test(name);
}

/** Variables that are URLs and may carry credentials: shown through redactUrl. */
const URL_VARIABLES: ReadonlySet<string> = new Set(["MONGODB_URI", "CLICKHOUSE_URL"]);

/** How a configuration value may be printed. */
export function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return "undefined";
  if (isSecretVariable(name)) return "<redacted>";
  if (URL_VARIABLES.has(name)) return JSON.stringify(redactUrl(value));
  return JSON.stringify(value);
}

/** Free text (an error message, a driver's message) with every URL in it passed through redactUrl. */
export function redactText(text: string): string {
  return text.replace(/[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'<>`]+/g, (url) => redactUrl(url));
}
