/**
 * The package's version, as `event-history --version` prints it. A constant rather than a read of
 * package.json, whose path differs between the sources, dist/esm and dist/cjs; a test keeps it
 * equal to package.json's.
 *
 * ```ts
 * console.log(`event-history ${VERSION}`);
 * ```
 */
export const VERSION = '0.1.0';
