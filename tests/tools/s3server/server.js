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
// until killed.  With S3_TLS_KEY / S3_TLS_CERT (PEM files) it speaks HTTPS.
// Needs NODE_OPTIONS=--openssl-legacy-provider on Node 20
// (S3rver uses DES for its continuation tokens).
'use strict';

const crypto = require('crypto');
const { createWriteStream } = require('fs');
const fs = require('fs/promises');
const path = require('path');
const { Transform } = require('stream');
const { pipeline } = require('stream/promises');
const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');
const FilesystemStore = require('@20minutes/s3rver/lib/stores/filesystem');

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

// Real S3 PUTs are atomic: a reader sees the old object or the new one,
// never a torn one.  S3rver writes the object file in place, so a server
// killed in the middle of a PUT (as test_s3_outage.sh does) would leave a
// partial object that S3 itself can never show.  Write a temporary file and
// rename it into place instead.  Temporary names do not end in
// "._S3rver_object", so listings never see them.
async function writeContent(file, content) {
  const md5 = crypto.createHash('md5');
  if (Buffer.isBuffer(content)) {
    await fs.writeFile(file, content);
    return [content.length, md5.update(content).digest('hex')];
  }
  let size = 0;
  await pipeline(
    content,
    new Transform({
      transform(chunk, encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    }),
    createWriteStream(file),
  );
  return [size, md5.digest('hex')];
}

FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  const md5Path = this.getResourcePath(object.bucket, object.key, 'object.md5');
  await fs.mkdir(path.dirname(objectPath), { recursive: true });
  const tmp = `${objectPath}.tmp-${crypto.randomBytes(8).toString('hex')}`;
  try {
    const [size, md5] = await writeContent(tmp, object.content);
    // A missing .md5 is recomputed from the object on the next read, so
    // dropping the old one first keeps ETags right whenever we die.
    await fs.rm(md5Path, { force: true });
    await fs.rename(tmp, objectPath);
    await this.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { size, md5 };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
};

// HTTPS when S3_TLS_KEY and S3_TLS_CERT name PEM files (TLS tests).
const tls = process.env.S3_TLS_KEY && process.env.S3_TLS_CERT
  ? {
      key: require('fs').readFileSync(process.env.S3_TLS_KEY),
      cert: require('fs').readFileSync(process.env.S3_TLS_CERT),
    }
  : {};

const server = new S3rver({
  ...tls,
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
