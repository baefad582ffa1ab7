'use strict';
// The Node.js reference server of the load-test suite: bareapi's benchmark and users-read routes,
// written the way a Node.js team writes a service — Fastify (the most used of Node's fast
// frameworks; no response schemas, so JSON goes through JSON.stringify), node-postgres (`pg`)
// with one Pool per process and named (prepared) statements, and node:cluster with one worker
// process per core, as Node deployments run.
//
//   node server.js --listen 127.0.0.1:PORT [--workers N] [--pool-size N]
//
// DATABASE_URL (postgres://user:password@host:port/db) names the database, whose tables
// bareapi's migrations created. --pool-size is the total number of database connections, split
// over the workers (16, as the axum reference). Once every worker listens, one line
// `listening addr=IP:PORT` goes to stdout.

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const http = require('node:http');
const os = require('node:os');
const { parseArgs } = require('node:util');
const zlib = require('node:zlib');

const { values: args } = parseArgs({
  options: {
    listen: { type: 'string' },
    workers: { type: 'string' },
    'pool-size': { type: 'string', default: '16' },
  },
});

function fail(message) {
  process.stderr.write(`node-ref: ${message}\n`);
  process.exit(1);
}

if (!args.listen || !/^.+:\d+$/.test(args.listen)) fail('--listen IP:PORT is required');
if (!process.env.DATABASE_URL) fail('DATABASE_URL must be set (postgres://user:password@host:port/db)');
const workers = args.workers ? Number(args.workers) : os.availableParallelism();
const poolSize = Number(args['pool-size']);
if (!Number.isInteger(workers) || workers < 1) fail('--workers must be a positive integer');
if (!Number.isInteger(poolSize) || poolSize < 1) fail('--pool-size must be a positive integer');

function runPrimary() {
  let listening = 0;
  let stopping = false;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('message', (worker, msg) => {
    if (msg && msg.listening && ++listening === workers) process.stdout.write(`listening addr=${msg.listening}\n`);
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) fail(`worker ${worker.process.pid} exited (${signal || code})`);
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
  });
  const stop = () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// ---------------------------------------------------------------------------------------------
// A worker: the routes.

const SELECT_WORLD = 'SELECT id, randomnumber FROM world WHERE id = $1';
const SELECT_ALL_WORLDS = 'SELECT id, randomnumber FROM world';
const SELECT_FORTUNES = 'SELECT id, message FROM fortune';
// One statement for the whole batch, rows joined in id order so that concurrent batches lock
// rows in the same order.
const UPDATE_WORLDS =
  'UPDATE world SET randomnumber = v.rn ' +
  'FROM (SELECT * FROM unnest($1::int4[], $2::int4[]) AS t(id, rn) ORDER BY id) AS v ' +
  'WHERE world.id = v.id';
const USER_COLUMNS =
  'id, email, name, ' +
  `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), ` +
  `to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const SELECT_USER = `SELECT ${USER_COLUMNS} FROM users WHERE id = $1`;
const SELECT_USERS = `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1)`;
const SELECT_SESSION_USER =
  'SELECT user_id FROM sessions WHERE token_hash = $1 AND NOT revoked AND expires_at > now()';

const WORLD_ROWS = 10000;
const UPDATE_ATTEMPTS = 3;
const EXTRA_FORTUNE = 'Additional fortune added at request time.';
const MAX_BATCH_IDS = 100;
const MIN_GZIP_BYTES = 1024;
const I64_MAX = 9223372036854775807n;

class HttpError extends Error {
  constructor(status, detail, headers = {}, errors = undefined) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.headers = headers;
    this.errors = errors;
  }
}

const noToken = () => new HttpError(401, 'This route needs an Authorization: Bearer token.', { 'WWW-Authenticate': 'Bearer' });
const invalidToken = () =>
  new HttpError(401, 'The bearer token is not valid (unknown, expired or revoked).', {
    'WWW-Authenticate': 'Bearer error="invalid_token"',
  });
const invalidField = (field, message) =>
  new HttpError(400, 'The request has invalid fields; see errors.', {}, [{ field, message }]);

function randomId() {
  return 1 + Math.floor(Math.random() * WORLD_ROWS);
}

// The `queries`/`count` rule: an integer clamped to 1..=500; missing, empty or non-integer
// values count as 1, and a number too large for any integer type as 500.
function queryCount(raw) {
  if (typeof raw !== 'string' || !/^\+?\d+$/.test(raw)) return 1;
  return Math.min(500, Math.max(1, Number(raw.replace('+', ''))));
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#x27;' })[c]);
}

// A positive integer that fits PostgreSQL's bigint, as a string (the query parameter), or null.
function positiveId(raw) {
  if (typeof raw !== 'string' || !/^\+?\d+$/.test(raw)) return null;
  const n = BigInt(raw);
  return n > 0n && n <= I64_MAX ? n.toString() : null;
}

// The SHA-256 of the request's bearer token (32 random bytes, 43 base64url characters).
function bearerTokenHash(header) {
  if (header === undefined) throw noToken();
  const value = header.trim();
  const space = value.indexOf(' ');
  if (space < 0) throw invalidToken();
  if (value.slice(0, space).toLowerCase() !== 'bearer') throw noToken();
  const token = value.slice(space + 1).trim();
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) throw invalidToken();
  const bytes = Buffer.from(token, 'base64url');
  // Non-zero trailing bits are not a canonical encoding: refused, as Rust's base64 does.
  if (bytes.length !== 32 || bytes.toString('base64url') !== token) throw invalidToken();
  return crypto.createHash('sha256').update(bytes).digest();
}

// True when Accept-Encoding accepts gzip (or x-gzip) with q > 0, or does not list it and
// accepts `*` with q > 0.
function acceptsGzip(header) {
  if (typeof header !== 'string') return false;
  let gzipQ = null;
  let starQ = null;
  for (const item of header.split(',')) {
    const [coding, ...params] = item.split(';');
    let q = 1;
    for (const p of params) {
      const eq = p.indexOf('=');
      if (eq >= 0 && p.slice(0, eq).trim().toLowerCase() === 'q') {
        q = Number(p.slice(eq + 1).trim());
        break;
      }
    }
    const c = coding.trim().toLowerCase();
    if (c === 'gzip' || c === 'x-gzip') gzipQ = q;
    else if (c === '*') starQ = q;
  }
  const q = gzipQ ?? starQ;
  return q !== null && q > 0;
}

// True when If-None-Match is `*` or lists one of `tags` (weak comparison: `W/` is ignored).
function noneMatchHits(header, tags) {
  if (typeof header !== 'string') return false;
  return header.split(',').some((raw) => {
    const c = raw.trim();
    return c === '*' || tags.includes(c.startsWith('W/') ? c.slice(2) : c);
  });
}

// A 200 JSON answer of `body` with a strong ETag (Cache-Control: private, no-cache), 304 when
// If-None-Match names it, gzip when the body is large enough and the client accepts it.
function sendRevalidatable(request, reply, body) {
  const useGzip = Buffer.byteLength(body) >= MIN_GZIP_BYTES && acceptsGzip(request.headers['accept-encoding']);
  const hex = crypto.createHash('sha256').update(body).digest('hex').slice(0, 32);
  const identityTag = `"${hex}"`;
  const gzipTag = `"${hex}-gzip"`;
  reply
    .header('Vary', 'accept-encoding')
    .header('ETag', useGzip ? gzipTag : identityTag)
    .header('Cache-Control', 'private, no-cache');
  if (noneMatchHits(request.headers['if-none-match'], [identityTag, gzipTag])) return reply.code(304).send();
  reply.type('application/json');
  if (useGzip) return reply.header('Content-Encoding', 'gzip').send(zlib.gzipSync(body, { level: 1 }));
  return reply.send(body);
}

// A row of USER_COLUMNS, read as an array (the two to_char columns share one name), as
// `reader` (the signed-in user's id) may see it: the email to its owner alone, as bareapi.
function userJson(row, reader) {
  if (String(row[0]) !== String(reader)) return { id: row[0], name: row[2], created_at: row[3], updated_at: row[4] };
  return { id: row[0], email: row[1], name: row[2], created_at: row[3], updated_at: row[4] };
}

// The database cannot serve now: a pool wait that timed out, a lost connection, or the
// SQLSTATE classes 08 (connection), 53 (resources) and 57P01..03 (shutdown).
function isUnavailable(err) {
  const code = err && err.code;
  if (typeof code === 'string') {
    if (!/^[0-9A-Z]{5}$/.test(code)) return true; // ECONNREFUSED, ECONNRESET, ...
    return code.startsWith('08') || code.startsWith('53') || ['57P01', '57P02', '57P03'].includes(code);
  }
  return /timeout exceeded when trying to connect|Connection terminated/i.test(String(err && err.message));
}

async function runWorker() {
  const Fastify = require('fastify');
  const pg = require('pg');
  // bigint (int8) columns as numbers: user ids are far below 2^53.
  pg.types.setTypeParser(20, (v) => parseInt(v, 10));

  const share = Math.max(1, Math.ceil(poolSize / workers));
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: share, connectionTimeoutMillis: 2000 });
  pool.on('error', () => {}); // an idle connection that broke is replaced on the next checkout

  const worldQuery = (id) => ({ name: 'world', text: SELECT_WORLD, values: [id] });
  const fetchWorld = async (id) => {
    const { rows } = await pool.query(worldQuery(id));
    return { id: rows[0].id, randomNumber: rows[0].randomnumber };
  };

  // `world` rows for /cached-queries, filled at start-up (not fatal: a miss reads through).
  const cache = new Map();
  try {
    const { rows } = await pool.query(SELECT_ALL_WORLDS);
    for (const r of rows) cache.set(r.id, { id: r.id, randomNumber: r.randomnumber });
  } catch (e) {
    process.stderr.write(`node-ref: filling the world cache failed: ${e.message}\n`);
  }

  const app = Fastify({ logger: false });

  app.addHook('onRequest', (request, reply, done) => {
    reply.header('Server', 'node-ref');
    done();
  });

  app.setErrorHandler((err, request, reply) => {
    let status;
    let detail;
    if (err instanceof HttpError) {
      ({ status, detail } = err);
      reply.headers(err.headers);
    } else if (isUnavailable(err)) {
      status = 503;
      detail = 'The database is unavailable; retry shortly.';
      reply.header('Retry-After', '1');
    } else if (err.statusCode >= 400 && err.statusCode < 500) {
      // Fastify's own refusals (a malformed request, ...).
      return reply.send(err);
    } else {
      process.stderr.write(`node-ref: internal error: ${err.stack || err}\n`);
      status = 500;
      detail = 'An internal error occurred.';
    }
    const problem = { type: 'about:blank', title: http.STATUS_CODES[status], status, detail };
    if (err.errors) problem.errors = err.errors;
    return reply.code(status).type('application/problem+json').send(JSON.stringify(problem));
  });

  app.get('/plaintext', (request, reply) => {
    reply.type('text/plain').send('Hello, World!');
  });

  app.get('/json', (request, reply) => {
    reply.type('application/json').send(JSON.stringify({ message: 'Hello, World!' }));
  });

  app.get('/db', async (request, reply) => {
    const world = await fetchWorld(randomId());
    return reply.type('application/json').send(JSON.stringify(world));
  });

  // Every row by its own statement; the statements run at once on the pool's connections.
  app.get('/queries', async (request, reply) => {
    const n = queryCount(request.query.queries);
    const worlds = await Promise.all(Array.from({ length: n }, () => fetchWorld(randomId())));
    return reply.type('application/json').send(JSON.stringify(worlds));
  });

  app.get('/fortunes', async (request, reply) => {
    const { rows } = await pool.query({ name: 'fortunes', text: SELECT_FORTUNES });
    rows.push({ id: 0, message: EXTRA_FORTUNE });
    rows.sort((a, b) => (a.message < b.message ? -1 : a.message > b.message ? 1 : 0));
    let html =
      '<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>';
    for (const f of rows) html += `<tr><td>${f.id}</td><td>${escapeHtml(f.message)}</td></tr>`;
    html += '</table></body></html>';
    return reply.type('text/html; charset=utf-8').send(html);
  });

  app.get('/updates', async (request, reply) => {
    const n = queryCount(request.query.queries);
    // Distinct ids: one batch never updates a row twice, so what is returned is what is stored.
    const ids = new Set();
    while (ids.size < n) ids.add(randomId());
    const worlds = await Promise.all([...ids].map(fetchWorld));
    for (const w of worlds) {
      let rn;
      do rn = randomId();
      while (rn === w.randomNumber);
      w.randomNumber = rn;
    }
    const update = { name: 'update-worlds', text: UPDATE_WORLDS, values: [worlds.map((w) => w.id), worlds.map((w) => w.randomNumber)] };
    for (let attempt = 1; ; attempt++) {
      try {
        await pool.query(update);
        break;
      } catch (e) {
        // A deadlock between two concurrent batches, or a serialization failure.
        if (attempt >= UPDATE_ATTEMPTS || !['40P01', '40001'].includes(e.code)) throw e;
      }
    }
    return reply.type('application/json').send(JSON.stringify(worlds));
  });

  app.get('/cached-queries', async (request, reply) => {
    const n = queryCount(request.query.count);
    const worlds = new Array(n);
    for (let i = 0; i < n; i++) {
      const id = randomId();
      let world = cache.get(id);
      if (world === undefined) {
        world = await fetchWorld(id);
        cache.set(id, world);
      }
      worlds[i] = world;
    }
    return reply.type('application/json').send(JSON.stringify(worlds));
  });

  // The users-API reads, behind a bearer session token, as bareapi answers them: any signed-in
  // user may read any user, the email only their own. `work` gets the client and the reader's id.
  async function signedIn(request, work) {
    const hash = bearerTokenHash(request.headers.authorization);
    const client = await pool.connect();
    try {
      const session = await client.query({ name: 'session-user', text: SELECT_SESSION_USER, values: [hash] });
      if (session.rows.length === 0) throw invalidToken();
      return await work(client, session.rows[0].user_id);
    } finally {
      client.release();
    }
  }

  app.get('/api/users/:id', async (request, reply) => {
    const id = positiveId(request.params.id);
    if (id === null) throw invalidField('id', 'must be a positive integer');
    const [reader, { rows }] = await signedIn(request, async (client, reader) => [reader, await client.query({ name: 'user', text: SELECT_USER, values: [id], rowMode: 'array' })]);
    if (rows.length === 0) throw new HttpError(404, 'No user has this id.');
    return sendRevalidatable(request, reply, JSON.stringify(userJson(rows[0], reader)));
  });

  // The users in the order asked, unknown ids skipped.
  app.get('/api/users', async (request, reply) => {
    const ids = parseIds(typeof request.query.ids === 'string' ? request.query.ids : '');
    const [reader, { rows }] = await signedIn(request, async (client, reader) => [reader, await client.query({ name: 'users', text: SELECT_USERS, values: [ids], rowMode: 'array' })]);
    const byId = new Map(rows.map((r) => [String(r[0]), r]));
    const items = ids.filter((id) => byId.has(id)).map((id) => userJson(byId.get(id), reader));
    return sendRevalidatable(request, reply, JSON.stringify({ items }));
  });

  // `ids=1,2,3`: 1..=100 positive integers; duplicates are answered once.
  function parseIds(raw) {
    if (raw === '') throw invalidField('ids', 'must list at least one id');
    const ids = [];
    for (const part of raw.split(',')) {
      if (ids.length === MAX_BATCH_IDS) throw invalidField('ids', 'must list at most 100 ids');
      const id = positiveId(part);
      if (id === null) throw invalidField('ids', 'must be positive integers separated by commas');
      if (!ids.includes(id)) ids.push(id);
    }
    return ids;
  }

  const sep = args.listen.lastIndexOf(':');
  const host = args.listen.slice(0, sep).replace(/^\[(.*)\]$/, '$1');
  await app.listen({ host, port: Number(args.listen.slice(sep + 1)) });
  const addr = app.server.address();
  process.send({ listening: addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}` });
  process.on('SIGTERM', () => process.exit(0));
}

if (cluster.isPrimary) {
  runPrimary();
} else {
  runWorker().catch((e) => fail(e.stack || String(e)));
}
