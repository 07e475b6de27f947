#!/usr/bin/env node
import { main } from './main.js';

// `event-history log … | head` closes the pipe early: stop quietly, as git does.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

main(process.argv.slice(2), process).then((code) => {
  process.exitCode = code;
});
