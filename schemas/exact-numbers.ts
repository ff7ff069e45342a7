/**
 * JSON numbers are read as IEEE doubles. A literal such as `4503599627370497.5` or
 * `10.0000000000000001` denotes a fraction but reads as an integer (4503599627370498, 10), and would
 * then pass every integer rule of the schemas: a token count or an amount in micros rounded without a
 * word. Such literals are found in the text before the schemas see the parsed value.
 *
 * `JSON.stringify` never writes one (it writes the shortest literal that reads back as the same
 * double), so only hand-written JSON can hold one, and a record that does is refused whole.
 */

const QUOTE = 34;
const BACKSLASH = 92;
const MINUS = 45;

function isNumberChar(code: number): boolean {
  // 0-9 . e E + -
  return (
    (code >= 48 && code <= 57) || code === 46 || code === 101 || code === 69 || code === 43 || code === 45
  );
}

/** True when `literal` (a JSON number) denotes an integer: every digit right of the point is 0. */
function denotesInteger(literal: string): boolean {
  const body = literal.charCodeAt(0) === MINUS ? literal.slice(1) : literal;
  const e = body.search(/[eE]/);
  const mantissa = e === -1 ? body : body.slice(0, e);
  const exponent = e === -1 ? 0 : Number(body.slice(e + 1));
  const dot = mantissa.indexOf(".");
  const whole = dot === -1 ? mantissa : mantissa.slice(0, dot);
  const digits = dot === -1 ? mantissa : whole + mantissa.slice(dot + 1);
  const point = whole.length + exponent;
  return !/[1-9]/.test(digits.slice(Math.max(0, point)));
}

/**
 * The first number literal of a valid JSON text that denotes a non-integer but reads as an integer,
 * or undefined. Strings are skipped whole (a date's `00.000Z` is no number); only literals with a
 * point or an exponent are looked at, since a plain integer literal denotes an integer.
 */
export function firstFalseInteger(text: string): string | undefined {
  const length = text.length;
  let i = 0;
  while (i < length) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      i = stringEnd(text, i) + 1;
      continue;
    }
    if (!isNumberChar(code)) {
      i++;
      continue;
    }
    let end = i + 1;
    let plain = code !== 46 && code !== 101 && code !== 69;
    while (end < length && isNumberChar(text.charCodeAt(end))) {
      const next = text.charCodeAt(end);
      if (next === 46 || next === 101 || next === 69) plain = false;
      end++;
    }
    if (!plain) {
      const literal = text.slice(i, end);
      if (Number.isInteger(Number(literal)) && !denotesInteger(literal)) return literal;
    }
    i = end;
  }
  return undefined;
}

/** Index of the quote that closes the string opening at `start` (the text is valid JSON). */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

/** The reason a record with such a literal is refused. */
export function falseIntegerReason(literal: string): string {
  return `number ${literal} is not an integer but would be read as ${Number(literal)}: token counts and amounts are integers (amounts may also be decimal strings of micros)`;
}
