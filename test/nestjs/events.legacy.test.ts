import { Injectable, Module } from '@nestjs/common';
import { EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { type HistoryEntry, HistoryTracked, Versioned } from '../../src/index.js';
import { EventHistoryModule } from '../../src/nestjs/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';

const db = new Database(':memory:');
db.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, text TEXT NOT NULL, version INTEGER NOT NULL)');
const history = new SqliteHistoryStore(db);

class Note {
  constructor(
    public id: string,
    public text: string,
  ) {}
  version?: number;
  timestamp?: Date;
}

@Injectable()
@Versioned()
@HistoryTracked(history, { entityType: 'Note' })
class Notes {
  async save(note: Note, session: Database.Database): Promise<void> {
    session.prepare('INSERT INTO notes (id, text, version) VALUES (?, ?, ?)').run(note.id, note.text, note.version);
    if (note.text === 'refuse') throw new Error('refused');
  }
}

/** Listens as a Nest application does, with @OnEvent; records whether the transaction was still open. */
@Injectable()
class Listener {
  readonly all: string[] = [];
  readonly notes: string[] = [];
  @OnEvent('event-history.committed')
  onAny(entry: HistoryEntry): void {
    this.all.push(`${entry.entityId}@${entry.version} inTx=${db.inTransaction}`);
  }
  @OnEvent('event-history.committed.Note')
  onNote(entry: HistoryEntry): void {
    this.notes.push(entry.entityId);
  }
}

describe('EventHistoryModule committedEvents', () => {
  it('emits each committed entry through EventEmitter2 after the commit, and nothing for a rollback', async () => {
    await history.ensureSchema();
    @Module({
      imports: [EventEmitterModule.forRoot(), EventHistoryModule.forRoot({ committedEvents: true })],
      providers: [Notes, Listener],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestApplication();
    await app.init();
    const notes = app.get(Notes);
    const listener = app.get(Listener);
    try {
      await notes.save(new Note('n1', 'hello'), db);
      await expect(notes.save(new Note('n2', 'refuse'), db)).rejects.toThrow('refused');
      await notes.save(new Note('n3', 'again'), db);
      expect(listener.all).toEqual(['n1@1 inTx=false', 'n3@1 inTx=false']);
      expect(listener.notes).toEqual(['n1', 'n3']);
    } finally {
      await app.close();
    }
    // After shutdown the application no longer hears commits.
    await notes.save(new Note('n4', 'after'), db);
    expect(listener.all).toHaveLength(2);
  });

  it('emits through a given emitter under a custom event name', async () => {
    const seen: [string, string][] = [];
    const emitter = { emit: (event: string, entry: unknown) => seen.push([event, (entry as HistoryEntry).entityId]) };
    @Module({
      imports: [EventHistoryModule.forRoot({ committedEvents: { emitter, event: 'history' } })],
      providers: [Notes],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestApplication();
    await app.init();
    try {
      await app.get(Notes).save(new Note('c1', 'custom'), db);
    } finally {
      await app.close();
    }
    expect(seen).toEqual([
      ['history', 'c1'],
      ['history.Note', 'c1'],
    ]);
  });
});
