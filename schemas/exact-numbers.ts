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
  // The walk below visits every character outside strings, about a twentieth of decoding a record;
  // almost no record has a point or an exponent outside a string, and the screen finds that first.
  return mayHoldPointOrExponent(text) ? scanFalseInteger(text) : undefined;
}

const DIGIT_BEFORE_EXPONENT = /[0-9][eE]/;
const DIGITS_BEFORE_EXPONENT = /[0-9][eE]/g;
const COLON = 58;
const COMMA = 44;
const OPEN_BRACKET = 91;

/**
 * False only when no number literal of the valid JSON `text` has a point or an exponent. Such a
 * literal's point or exponent follows a digit (JSON allows no `.5` or `e5`), and its first character
 * follows a value's opening: the text's start, `,`, `[`, or a `:` right after a key's closing quote,
 * whitespace allowed between. A digit and a point inside a string (a date's `00:00.000Z`: its colon
 * follows a digit) mostly fail that; where one passes, the exact walk decides.
 */
export function mayHoldPointOrExponent(text: string): boolean {
  for (let point = text.indexOf(".", 1); point !== -1; point = text.indexOf(".", point + 1))
    if (isDigit(text.charCodeAt(point - 1)) && opensValue(text, point - 1)) return true;
  // No regular expression match is built unless a digit is followed by an e somewhere.
  if (!DIGIT_BEFORE_EXPONENT.test(text)) return false;
  const pattern = DIGITS_BEFORE_EXPONENT;
  pattern.lastIndex = 0;
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text))
    if (opensValue(text, match.index)) return true;
  return false;
}

/** Whether the digits ending at `last` (a minus sign allowed before them) stand where a JSON value may start. */
function opensValue(text: string, last: number): boolean {
  let i = last;
  while (i >= 0 && isDigit(text.charCodeAt(i))) i--;
  if (i >= 0 && text.charCodeAt(i) === MINUS) i--;
  i = skipWhitespaceBack(text, i);
  if (i < 0) return true;
  const code = text.charCodeAt(i);
  if (code === COMMA || code === OPEN_BRACKET) return true;
  return code === COLON && text.charCodeAt(skipWhitespaceBack(text, i - 1)) === QUOTE;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** The index of the last non-whitespace character at or before `i` (JSON's four), or -1. */
function skipWhitespaceBack(text: string, i: number): number {
  while (i >= 0) {
    const code = text.charCodeAt(i);
    if (code !== 32 && code !== 9 && code !== 10 && code !== 13) return i;
    i--;
  }
  return i;
}

/** firstFalseInteger without the screen: every character outside strings is looked at. */
export function scanFalseInteger(text: string): string | undefined {
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
