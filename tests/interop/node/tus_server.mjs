// @tus/server + @tus/file-store on loopback, for tests/interop and benchmarks/.
//
//   node tus_server.mjs --host 127.0.0.1 --port 0 --dir DIR
//
// Serves tus at http://HOST:PORT/files/ and GET /healthz -> 200. Once listening it prints one
// JSON line on stdout, {"ready": true, "url": "http://HOST:PORT/files/", "port": PORT}, so a
// caller that passed --port 0 learns the port without racing for it. Stops on SIGTERM/SIGINT.
import http from 'node:http'
import { parseArgs } from 'node:util'
import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    dir: { type: 'string' },
  },
  strict: true,
})
if (!values.dir) {
  process.stderr.write('tus_server.mjs: --dir is required\n')
  process.exit(2)
}

const tus = new Server({ path: '/files', datastore: new FileStore({ directory: values.dir }) })

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' })
    res.end('ok\n')
    return
  }
  tus.handle(req, res)
})

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address()
  const host = values.host.includes(':') ? `[${values.host}]` : values.host
  process.stdout.write(`${JSON.stringify({ ready: true, url: `http://${host}:${port}/files/`, port })}\n`)
})

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0))
    server.closeAllConnections()
  })
}
