// tus-js-client (Node) uploading one file, for tests/interop and benchmarks/.
//
//   node tus_upload.mjs --endpoint URL --file PATH [--chunk-size BYTES] [--parallel N]
//                       [--protocol tus-v1|ietf-draft-03|ietf-draft-05] [--upload-during-creation]
//
// Defaults are tus-js-client's own (one streamed PATCH, no parallel uploads). Retries are off
// so a failure shows its first cause. On success prints one JSON line on stdout,
// {"url": UPLOAD_URL, "size": BYTES}; on error prints the error on stderr and exits 1
// (2 on a usage error).
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import * as tus from 'tus-js-client'

let values
try {
  ;({ values } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      file: { type: 'string' },
      'chunk-size': { type: 'string' },
      parallel: { type: 'string', default: '1' },
      protocol: { type: 'string', default: 'tus-v1' },
      'upload-during-creation': { type: 'boolean', default: false },
    },
    strict: true,
  }))
} catch (err) {
  process.stderr.write(`tus_upload.mjs: ${err.message}\n`)
  process.exit(2)
}
if (!values.endpoint || !values.file) {
  process.stderr.write('tus_upload.mjs: --endpoint and --file are required\n')
  process.exit(2)
}

const size = fs.statSync(values.file).size
const parallel = Number(values.parallel)
const options = {
  endpoint: values.endpoint,
  retryDelays: null,
  metadata: { filename: path.basename(values.file), filetype: 'application/octet-stream' },
  onError(err) {
    process.stderr.write(`tus_upload.mjs: upload failed: ${err.stack ?? err}\n`)
    process.exit(1)
  },
}
if (values['chunk-size'] !== undefined) options.chunkSize = Number(values['chunk-size'])
if (parallel > 1) options.parallelUploads = parallel
if (values.protocol !== 'tus-v1') options.protocol = values.protocol
if (values['upload-during-creation']) options.uploadDataDuringCreation = true

const upload = new tus.Upload(fs.createReadStream(values.file), {
  ...options,
  onSuccess() {
    process.stdout.write(`${JSON.stringify({ url: upload.url, size })}\n`)
  },
})
upload.start()
