import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveCommand } from '../../src/cli/serve.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';

// The viewer end to end in headless Chromium (Debian's chromium package, which .ci/run installs),
// on the database `npm run demo` writes, driven by the keyboard alone. Runs in one project only
// (.legacy): it drives a browser, not decorators.

const ROOT = join(import.meta.dirname, '../..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TSX = pathToFileURL(createRequire(join(ROOT, 'package.json')).resolve('tsx')).href;
const SCREENSHOT = join(ROOT, 'artifacts', 'viewer.png');
const HOSTILE_ID = '<img src=x onerror="window.pwned=1">';
const HOSTILE_TEXT = '</pre><script>window.pwned=2</script><b>bold</b>';

/** Presses Tab until the focused element matches `selector`, as a keyboard user would. */
async function tabTo(page: Page, selector: string, presses = 40): Promise<void> {
  for (let i = 0; i < presses; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s) === true, selector)) return;
  }
  throw new Error(`Tab never reached ${selector}`);
}

// The few browser globals the page callbacks use: this file compiles without the DOM library.
declare const document: {
  readonly activeElement: {
    readonly id: string;
    readonly textContent: string | null;
    matches(s: string): boolean;
  } | null;
  querySelectorAll(selector: string): { readonly length: number };
};
declare function getComputedStyle(node: unknown): { readonly outlineStyle: string };

const text = async (page: Page, selector: string) => (await page.locator(selector).textContent()) ?? '';

if (!existsSync(CHROMIUM) && !REQUIRE_DATABASES) {
  describe.skip(`history viewer in Chromium: skipped because ${CHROMIUM} is missing (apt-get install chromium; REQUIRE_DATABASES=1 makes this fail)`, () => {
    it('drives the viewer by keyboard', () => {});
  });
} else {
  describe('history viewer in headless Chromium, on the demo’s database, by keyboard', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'event-history-viewer-'));
    const controller = new AbortController();
    let browser: Browser;
    let page: Page;
    let url: string;
    let served: Promise<number>;
    const pageErrors: string[] = [];

    beforeAll(async () => {
      if (!existsSync(CHROMIUM)) {
        throw new Error(`REQUIRE_DATABASES=1, but ${CHROMIUM} is missing: apt-get install -y chromium`);
      }
      // The demo on its SQLite file, as `npm run demo` without DATABASE_URL (CI sets it).
      const { DATABASE_URL: _postgres, ...env } = process.env;
      await new Promise<void>((resolve, reject) =>
        execFile(process.execPath, ['--import', TSX, join(ROOT, 'demo/index.ts')], { cwd, env }, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      const path = join(cwd, 'demo-history.db');
      // Hostile data beside the demo's: markup in a type's id, actor, reason and snapshot.
      const db = new Database(path);
      await new SqliteHistoryStore(db).save({
        entityType: 'Note',
        entityId: HOSTILE_ID,
        version: 1,
        op: 'create',
        timestamp: new Date(),
        snapshot: { body: HOSTILE_TEXT, [HOSTILE_ID]: 1 },
        actor: HOSTILE_TEXT,
        reason: HOSTILE_ID,
        txId: HOSTILE_TEXT,
      });
      db.close();
      let stdout = '';
      const io = {
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stdout += t) },
        env: {},
      };
      served = serveCommand(['--url', `sqlite:${path}`, '--port', '0'], io, controller.signal);
      while (!/http:\/\/\S+/.test(stdout)) await new Promise((resolve) => setTimeout(resolve, 20));
      url = /http:\/\/127\.0\.0\.1:\d+\//.exec(stdout)?.[0] as string;
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-background-networking'],
      });
      page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      page.on('pageerror', (error) => pageErrors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') pageErrors.push(message.text());
      });
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      controller.abort();
      await served;
      rmSync(cwd, { recursive: true, force: true });
    });

    it('reaches an entity by keyboard, shows its timeline, a diff and the chain status, and saves a screenshot', async () => {
      await page.goto(url);
      await page.locator('#types [role=option]').first().waitFor();
      expect(await text(page, '#where')).toContain('demo-history.db');

      await tabTo(page, '#types');
      expect(await page.locator('#types [role=option]').allTextContents()).toEqual(['Note', 'Order']);
      await page.keyboard.press('ArrowDown');
      const active = await page.locator('#types').getAttribute('aria-activedescendant');
      expect(await page.locator(`#${active}`).textContent()).toBe('Order');
      // The active option is outlined while the list has keyboard focus.
      expect(await page.locator(`#${active}`).evaluate((node) => getComputedStyle(node).outlineStyle)).toBe('solid');
      await page.keyboard.press('Enter');
      await page.locator('#ids [role=option]').first().waitFor();
      expect(await page.locator('#ids [role=option]').allTextContents()).toEqual(['A-1001', 'A-1002']);

      // The search box narrows the ids by prefix; ArrowDown goes on to the list.
      await tabTo(page, '#search');
      await page.keyboard.type('A-1002');
      await page.waitForFunction(() => document.querySelectorAll('#ids [role=option]').length === 1);
      expect(await page.locator('#ids [role=option]').allTextContents()).toEqual(['A-1002']);
      await page.keyboard.press('Control+A');
      await page.keyboard.press('Backspace');
      await page.waitForFunction(() => document.querySelectorAll('#ids [role=option]').length === 2);
      await page.keyboard.press('ArrowDown');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('ids');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelectorAll('#timeline tbody tr').length === 3);
      expect(await text(page, '#entity-title')).toBe('Order A-1001');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('entity-title');

      const rows = await page
        .locator('#timeline tbody tr')
        .evaluateAll((trs) =>
          trs.map((tr) =>
            Array.from(tr.children, (td) => ((td as { textContent: string | null }).textContent ?? '').trim()),
          ),
        );
      expect(rows.map((row) => row.slice(0, 2))).toEqual([
        ['v3', 'update'],
        ['v2', 'update'],
        ['v1', 'create'],
      ]);
      expect(rows.map((row) => [row[3], row[4]])).toEqual([
        ['bob', 'customer called'],
        ['ada', ''],
        ['ada', ''],
      ]);
      expect(rows[0]?.[2]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/);
      expect(rows[0]?.[5]).toMatch(/^[0-9a-f]{8}$/);
      expect(rows[0]?.[6]).toBe('~ address: "1 Analytical Way" → "12 Difference Engine Rd"');

      await page.locator('#chain .ok').waitFor();
      expect(await text(page, '#chain')).toContain('ok: 3 entries, hash chain intact');

      // Arrow keys move between versions; Enter shows one.
      await tabTo(page, '#timeline button.version');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('v3');
      await page.keyboard.press('ArrowDown');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('v2');
      expect(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle)).toBe('solid');
      await page.keyboard.press('Enter');
      await page.locator('#version pre').waitFor();
      expect(await text(page, '#version')).toContain('+ items[1]: "cup"');

      // The whole transaction of version 2, from its transaction button (ArrowRight in the row).
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('Enter');
      await page.locator('#tx li').first().waitFor();
      expect(await page.locator('#tx li').allTextContents()).toEqual(['Order A-1001 v2 update']);

      // The diff of the oldest and newest versions, side by side.
      await tabTo(page, '#compare');
      expect(await page.locator('#from').inputValue()).toBe('1');
      expect(await page.locator('#to').inputValue()).toBe('3');
      await page.keyboard.press('Enter');
      await page.locator('#diff-table').waitFor();
      const diffRows = await page
        .locator('#diff-table tbody tr')
        .evaluateAll((trs) =>
          trs.map((tr) =>
            Array.from(tr.children, (td) => ((td as { textContent: string | null }).textContent ?? '').trim()),
          ),
        );
      expect(diffRows).toEqual([
        ['address', '"1 Analytical Way"', '"12 Difference Engine Rd"'],
        ['items[1]', '', '"cup"'],
        ['items[2]', '', '"cup"'],
      ]);
      expect(await page.locator('#diff .side pre').count()).toBe(2);

      mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`viewer screenshot: ${SCREENSHOT}`);
      expect(existsSync(SCREENSHOT)).toBe(true);
      expect(pageErrors).toEqual([]);
    }, 60_000);

    it('shows hostile ids, actors and snapshots as text: nothing of them runs or becomes markup', async () => {
      await page.goto(url);
      await page.locator('#types [role=option]').first().waitFor();
      await tabTo(page, '#types');
      await page.keyboard.press('Enter');
      await page.locator('#ids [role=option]').first().waitFor();
      await tabTo(page, '#ids');
      await page.keyboard.press('Enter');
      await page.locator('#timeline tbody tr').first().waitFor();
      await tabTo(page, '#timeline button.version');
      await page.keyboard.press('Enter');
      await page.locator('#version pre').waitFor();
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('Enter');
      await page.locator('#tx li').first().waitFor();

      expect(await text(page, '#entity-title')).toBe(`Note ${HOSTILE_ID}`);
      expect(await page.locator('#timeline tbody td').nth(3).textContent()).toBe(HOSTILE_TEXT);
      expect(await page.locator('#timeline tbody td').nth(4).textContent()).toBe(HOSTILE_ID);
      expect(await text(page, '#version pre')).toContain(JSON.stringify(HOSTILE_TEXT));
      expect(await text(page, '#tx')).toContain(`Transaction ${HOSTILE_TEXT}`);
      expect(await page.evaluate(() => (globalThis as { pwned?: number }).pwned)).toBeUndefined();
      expect(await page.locator('img, main script, main b, nav script, nav img').count()).toBe(0);
      expect(pageErrors).toEqual([]);
    }, 60_000);
  });
}
