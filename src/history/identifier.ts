/**
 * Checks a table or collection name before it is put into SQL or used as a collection:
 * letters, digits and underscores, optionally one `schema.` prefix, at most 63 characters a part.
 */
export function assertIdentifier(name: string, what: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/.test(name)) {
    throw new TypeError(
      `${what} ${JSON.stringify(name)} is not a safe identifier: use letters, digits and underscores ` +
        '(optionally schema.table), starting with a letter or underscore, at most 63 characters.',
    );
  }
  return name;
}
