/**
 * Whether a class keeps per-instance state where no one outside it can read it, judged from its
 * source (`Function.prototype.toString`): instance private fields, native (`#balance = 0;`) or
 * compiled into WeakMaps by TypeScript, esbuild, Babel or SWC, or a hand-written WeakMap keyed by
 * `this`. Used by entity-state to refuse to run a call again on such an entity. It errs on the
 * side of refusing: a false alarm costs a retry, a miss applies a change twice.
 *
 * Not seen: private state of a minified build whose helpers were renamed, or kept in a closure.
 */
export function hidesInstanceState(source: string): boolean {
  return compiledPrivate.test(source) || keyedByThis.test(source) || declaresPrivateField(source);
}

// The helpers compilers call for private fields: tslib's __classPrivateFieldGet, esbuild's
// __privateGet, Babel's _classPrivateFieldGet / babelHelpers.classPrivateFieldGet, SWC's
// _class_private_field_get / swcHelpers.classPrivateFieldGet, and their brand checks.
const compiledPrivate =
  /class_?private_?field|__private(?:get|set|add|wrapper|method|in)\b|assert_?class_?brand|check_?private_?redeclaration/i;
// `store.get(this)`, `store.set(this, …)`: state kept in a map keyed by the instance.
const keyedByThis = /\.(?:get|set|has)\(\s*this\s*[,)]/;

// After these, a `/` starts a regular expression, not a division.
const beforeRegExp = new Set([
  '',
  '(',
  ',',
  '=',
  ':',
  '[',
  '!',
  '&',
  '|',
  '?',
  '{',
  '}',
  ';',
  '~',
  '+',
  '-',
  '*',
  '%',
  '<',
  '>',
  '^',
]);
const keywordsBeforeRegExp = new Set([
  'return',
  'typeof',
  'case',
  'do',
  'else',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'instanceof',
  'yield',
  'await',
]);

/**
 * Whether the class body declares an instance private field: a `#name` at the body's top level
 * that is not `static` and not a method or accessor (`#name(`). Strings, template literals,
 * comments and regular expressions are skipped, so `'#fff'`, `// #region` or `/#token=/` are not
 * taken for one, and a quote inside a regular expression hides nothing after it.
 */
function declaresPrivateField(source: string): boolean {
  let depth = 0; // brace depth: the class body is depth 1
  let previous = ''; // the last significant punctuation, or 'x' after an operand
  let word = ''; // the last identifier or keyword, if it was the last token
  const templates: number[] = []; // the depths at which a template literal's `${` expressions end
  for (let i = 0; i < source.length; i++) {
    const c = source[i] as string;
    if (c === ' ' || c === '\n' || c === '\t' || c === '\r') continue;
    if (c === '/' && source[i + 1] === '/') {
      const end = source.indexOf('\n', i);
      if (end < 0) return false;
      i = end;
      continue;
    }
    if (c === '/' && source[i + 1] === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) return false;
      i = end + 1;
      continue;
    }
    if (c === '"' || c === "'") {
      i = endOfString(source, i);
      previous = 'x';
      word = '';
      continue;
    }
    if (c === '`' || (c === '}' && templates.length > 0 && templates[templates.length - 1] === depth - 1)) {
      if (c === '}') {
        depth--;
        templates.pop();
      }
      const { end, expression } = template(source, i + 1);
      i = end;
      if (expression) templates.push(depth++);
      previous = 'x';
      word = '';
      continue;
    }
    if (c === '/' && (beforeRegExp.has(previous) || keywordsBeforeRegExp.has(word))) {
      i = endOfRegExp(source, i);
      previous = 'x';
      word = '';
      continue;
    }
    if (c === '#' && depth === 1) {
      const name = /^#[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*/u.exec(source.slice(i, i + 256));
      if (name !== null) {
        const after = source.slice(i + name[0].length).trimStart()[0];
        if (word !== 'static' && after !== '(') return true;
        i += name[0].length - 1;
        previous = 'x';
        word = '';
        continue;
      }
    }
    if (/[\p{ID_Start}$_]/u.test(c)) {
      const identifier = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*/u.exec(source.slice(i, i + 256));
      const text = identifier?.[0] ?? c;
      i += text.length - 1;
      word = text;
      previous = 'x';
      continue;
    }
    if (/[0-9]/.test(c)) {
      while (i + 1 < source.length && /[\w.]/.test(source[i + 1] as string)) i++;
      previous = 'x';
      word = '';
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') depth--;
    previous = c === ')' || c === ']' ? 'x' : c;
    word = '';
  }
  return false;
}

/** The index of the quote that closes the string opened at `start`. */
function endOfString(source: string, start: number): number {
  const quote = source[start];
  for (let i = start + 1; i < source.length; i++) {
    if (source[i] === '\\') i++;
    else if (source[i] === quote) return i;
  }
  return source.length;
}

/** Scans a template literal's text from `start`: to its closing backtick, or into a `${` expression. */
function template(source: string, start: number): { end: number; expression: boolean } {
  for (let i = start; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '`') return { end: i, expression: false };
    else if (c === '$' && source[i + 1] === '{') return { end: i + 1, expression: true };
  }
  return { end: source.length, expression: false };
}

/** The index of the last flag of the regular expression opened at `start`. */
function endOfRegExp(source: string, start: number): number {
  let inClass = false;
  for (let i = start + 1; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
    else if (c === '/' && !inClass) {
      while (i + 1 < source.length && /[a-z]/i.test(source[i + 1] as string)) i++;
      return i;
    } else if (c === '\n') return i; // not a regular expression after all
  }
  return source.length;
}
