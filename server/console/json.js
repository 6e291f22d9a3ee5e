// JSON, exactly: integers beyond 2^53 stay exact both ways.

/** Parse JSON text; an integer too large for a double becomes a BigInt (JSON.parse would round it). */
export function parseJSON(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

/** JSON text of a value; a BigInt is written as its exact digits. */
export function jsonText(value, indent) {
  return JSON.stringify(value, (key, v) => (typeof v === "bigint"
    ? (JSON.rawJSON ? JSON.rawJSON(v.toString()) : v.toString()) : v), indent);
}
