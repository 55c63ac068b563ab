#!/usr/bin/env node
// A real S3-compatible server (S3rver) on 127.0.0.1 for opsbackup's tests.
//
//   S3_ACCESS_KEY=... S3_SECRET_KEY=... node server.js PORT DIR BUCKET
//
// Serves DIR (created if missing; existing objects are kept, so a test can
// stop the server and start it again on the same data) on 127.0.0.1:PORT,
// creates BUCKET if it does not exist, and accepts SigV4 requests signed
// with exactly that key pair (the credentials travel in the environment,
// never in argv).  Prints "ready PORT" on stdout once it listens; runs
// until killed.  Needs NODE_OPTIONS=--openssl-legacy-provider on Node 20
// (S3rver uses DES for its continuation tokens).
'use strict';

const path = require('path');
const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');

const [port, dir, bucket] = process.argv.slice(2);
const accessKey = process.env.S3_ACCESS_KEY;
const secretKey = process.env.S3_SECRET_KEY;
if (!port || !dir || !bucket || !accessKey || !secretKey) {
  process.stderr.write(
    'usage: S3_ACCESS_KEY=K S3_SECRET_KEY=S node server.js PORT DIR BUCKET\n');
  process.exit(2);
}

// S3rver knows one built-in account with the well-known pair S3RVER/S3RVER;
// drop it so only our pair is accepted, then register ours.
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory: path.resolve(dir),
  silent: !process.env.S3SERVER_VERBOSE,
  vhostBuckets: false,
  allowMismatchedSignatures: false,
  configureBuckets: [{ name: bucket }],
});

server.run().then(
  (addr) => process.stdout.write(`ready ${addr.port}\n`),
  (err) => {
    process.stderr.write(`s3server: ${err.message}\n`);
    process.exit(1);
  });
