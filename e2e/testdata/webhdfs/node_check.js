// Drives Shoal's WebHDFS with Node's webhdfs package: uploads LOCAL to
// REMOTE (R=1), then downloads REMOTE to OUT.
// Usage: node node_check.js HOST PORT TOKEN LOCAL REMOTE OUT
const WebHDFS = require('webhdfs');
const fs = require('fs');

const [host, port, token, local, remote, out] = process.argv.slice(2);
const client = WebHDFS.createClient({ host: host, port: Number(port), path: '/webhdfs/v1' });

function fail (what, err) {
  console.error('node_check: ' + what + ': ' + (err && err.message ? err.message : err));
  process.exit(1);
}

const upload = client.createWriteStream(remote, false, { delegation: token, replication: 1 });
upload.on('error', (err) => fail('upload', err));
upload.on('finish', () => {
  const download = client.createReadStream(remote, { delegation: token });
  const sink = fs.createWriteStream(out);
  download.on('error', (err) => fail('download', err));
  sink.on('finish', () => process.exit(0));
  download.pipe(sink);
});
fs.createReadStream(local).pipe(upload);
