// tus-js-client (Node) uploading to Supabase Storage as Supabase's resumable-upload guide shows:
// 6 MiB chunks, bucketName/objectName/contentType/cacheControl metadata, x-upsert, the key as
// apikey (and as a Bearer token when it is a JWT).
//
//   SUPABASE_KEY=... node supabase_upload.mjs --endpoint URL --file PATH --bucket B --object O
//       [--upsert] [--chunk-size BYTES]
//
// Prints {"url": UPLOAD_URL, "size": BYTES} on success; the error on stderr and exit 1 on failure.
import fs from 'node:fs'
import { parseArgs } from 'node:util'
import * as tus from 'tus-js-client'

const { values } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    file: { type: 'string' },
    bucket: { type: 'string' },
    object: { type: 'string' },
    upsert: { type: 'boolean', default: false },
    'chunk-size': { type: 'string', default: String(6 * 1024 * 1024) },
  },
  strict: true,
})
const key = process.env.SUPABASE_KEY
const headers = { apikey: key, 'x-upsert': values.upsert ? 'true' : 'false' }
if (key.startsWith('eyJ')) headers.authorization = `Bearer ${key}`
const size = fs.statSync(values.file).size
const upload = new tus.Upload(fs.createReadStream(values.file), {
  endpoint: values.endpoint,
  retryDelays: null,
  headers,
  uploadDataDuringCreation: true,
  removeFingerprintOnSuccess: true,
  metadata: {
    bucketName: values.bucket,
    objectName: values.object,
    contentType: 'application/octet-stream',
    cacheControl: '3600',
  },
  chunkSize: Number(values['chunk-size']),
  onError(err) {
    process.stderr.write(`supabase_upload.mjs: upload failed: ${err.message ?? err}\n`)
    process.exit(1)
  },
  onSuccess() {
    process.stdout.write(`${JSON.stringify({ url: upload.url, size })}\n`)
  },
})
upload.start()
