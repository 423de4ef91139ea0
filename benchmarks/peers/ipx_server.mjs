// IPX 3 behind node's cluster module: WORKERS processes share one port (127.0.0.1:PORT),
// each serving files from IPX_DIR and, when IPX_HTTP_DOMAINS is set (W6: a remote source),
// images fetched from those hosts by IPX's http storage (ids that start with http://).
// Copied next to node_modules by the benchmark harness.
import cluster from "node:cluster";
import http from "node:http";
import { createIPX, createIPXNodeServer, ipxFSStorage, ipxHttpStorage } from "ipx";

const workers = Number(process.env.WORKERS || 2);
const port = Number(process.env.PORT || 3000);
const domains = (process.env.IPX_HTTP_DOMAINS || "").split(",").filter(Boolean);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const ipx = createIPX({
    storage: ipxFSStorage({ dir: process.env.IPX_DIR }),
    httpStorage: domains.length ? ipxHttpStorage({ domains }) : undefined,
  });
  http.createServer(createIPXNodeServer(ipx)).listen(port, "127.0.0.1");
}
