#!/usr/bin/env node
// bench/s3server.js — the tests' S3 server (tests/tools/s3server/server.js,
// S3rver) with one fix the bench needs, for scenario E.
//
//   S3_ACCESS_KEY=K S3_SECRET_KEY=S NODE_OPTIONS=--openssl-legacy-provider \
//       node bench/s3server.js PORT DIR BUCKET
//
// Same arguments, environment and "ready PORT" line as server.js, which it
// runs unchanged after patching S3rver in memory.
//
// The fix: S3rver builds the SigV4 canonical URI of a bucket-level request
// from the bucket name alone ("/BUCKET"), whatever path was sent.  S3 signs
// the path as sent, and minio-go (restic's S3 client) sends bucket-level
// requests — HEAD bucket, ListObjectsV2 — as "/BUCKET/", so every one of
// them failed with SignatureDoesNotMatch and restic could not even init.
// opsbackup sends "/BUCKET?..." and is not affected.  Here a request whose
// path is exactly "/BUCKET/" has its canonical URI computed as "/BUCKET/",
// as S3 does; nothing else changes (a wrong signature is still rejected).
'use strict';

const path = require('path');

const S3DIR = path.resolve(__dirname, '..', 'tests', 'tools', 's3server');
const lib = path.join(S3DIR, 'node_modules', '@20minutes', 's3rver', 'lib');
const S3rver = require(path.join(lib, 's3rver.js'));
const v4 = require(path.join(lib, 'signature', 'v4.js'));

const TRAILING_SLASH = Symbol('bench: bucket path sent with a trailing slash');

// BENCH_S3_REQLOG=1 (bench: BENCH_S3_LOG=1): one line per request on
// stdout, "REQ START METHOD PATH?QUERY STATUS MS BYTES RANGE" (START =
// arrival, milliseconds since the epoch; MS = time from arrival to the end
// of the response; BYTES = the response's Content-Length, or -; RANGE = the
// request's Range header without spaces, or -), which
// bench/s3_requests.py counts.  S3rver's own log (S3SERVER_VERBOSE)
// cuts the method off.
const REQLOG = process.env.BENCH_S3_REQLOG === '1';
// BENCH_S3_LATENCY_MS=N: every request waits N ms before it is served, as
// a request to a real S3 endpoint pays a round trip and the service's first
// byte (tens of ms) that S3rver on 127.0.0.1 does not.  The wait does not
// hold the server: other requests are served meanwhile.
const LATENCY_MS = Number(process.env.BENCH_S3_LATENCY_MS || 0);

const listen = S3rver.prototype.listen;
S3rver.prototype.listen = function benchListen(...args) {
  // First middleware: remember that the path was "/BUCKET/".
  this.middleware.unshift((ctx, next) => {
    if (/^\/[^/]+\/$/.test(ctx.path)) ctx.req.headers[TRAILING_SLASH] = true;
    return next();
  });
  if (LATENCY_MS > 0) {
    this.middleware.unshift(
      (ctx, next) => new Promise((resolve) => setTimeout(resolve, LATENCY_MS)).then(next));
  }
  if (REQLOG) {
    this.middleware.unshift((ctx, next) => {
      const t0 = process.hrtime.bigint();
      const start = Date.now();
      ctx.res.on('finish', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const len = ctx.response.get('Content-Length') || '-';
        const range = (ctx.get('Range') || '-').replace(/\s+/g, '');
        process.stdout.write(`REQ ${start} ${ctx.method} ${ctx.url} ${ctx.status} ${ms.toFixed(1)} ${len} ${range}\n`);
      });
      return next();
    });
  }
  return listen.apply(this, args);
};

const getStringToSign = v4.getStringToSign;
v4.getStringToSign = function benchGetStringToSign(canonicalRequest, request) {
  if (canonicalRequest.headers[TRAILING_SLASH] && !canonicalRequest.uri.endsWith('/'))
    canonicalRequest = { ...canonicalRequest, uri: canonicalRequest.uri + '/' };
  return getStringToSign(canonicalRequest, request);
};

require(path.join(S3DIR, 'server.js'));
