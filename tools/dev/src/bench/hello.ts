import express from 'express';

/**
 * Baseline of `npm run bench`: Express 5 hello-world answering JSON on `GET /` (127.0.0.1:`PORT`),
 * in its own Node process like the gateway. Its `GET /readyz` answers 200 once listening.
 */
const app = express();
app.disable('x-powered-by');
app.get('/', (_req, res) => {
  res.json({ hello: 'world' });
});
app.get('/readyz', (_req, res) => {
  res.json({ status: 'ready' });
});
app.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
