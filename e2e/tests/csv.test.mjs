// The dashboard's CSV cells (assets/dashboard/csv.js), without a browser:
// formula-like names are neutralised, numbers kept, quoting as RFC 4180.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import vm from 'node:vm';

const source = await readFile(new URL('../../assets/dashboard/csv.js', import.meta.url), 'utf8');
const context = {};
vm.runInNewContext(source, context);
const { csvCell } = context;

test('names a spreadsheet would evaluate get a leading quote', () => {
  for (const name of ['=1+1', '+SUM(A1)', '-2+3', '@cmd', '\tx', '\rx']) {
    assert.ok(csvCell(name).replace(/^"/, '').startsWith(`'${name[0]}`), `${JSON.stringify(name)} → ${csvCell(name)}`);
  }
  assert.equal(csvCell('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
});

test('other cells are unchanged, numbers included', () => {
  assert.equal(csvCell('red'), 'red');
  assert.equal(csvCell('a=b'), 'a=b');
  assert.equal(csvCell(-0.05), '-0.05');
  assert.equal(csvCell(200), '200');
  assert.equal(csvCell(true), 'true');
  assert.equal(csvCell(null), '');
  assert.equal(csvCell(undefined), '');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
});
