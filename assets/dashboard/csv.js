// The cells of the dashboard's CSV export, apart from app.js so that node can
// test them (e2e/tests/csv.test.mjs). Names come from public tracking, so a
// name a spreadsheet would run as a formula is neutralised.
"use strict";

/**
 * One CSV cell: empty for null; text starting with = + - @ (or a tab or
 * carriage return) gets a leading ' so spreadsheets show it instead of
 * evaluating it; quoted when it holds a quote, comma or line break.
 * Numbers stay numbers: a negative uplift is data, not a formula.
 */
function csvCell(value) {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
