// A TCP proxy on loopback in front of the test server that can stop passing traffic in both
// directions without closing anything: a stalled link (a network partition, a wedged NAT), where
// no FIN or RST reaches either side.
import net from "node:net";
import type { Target } from "./env.js";

export interface StallingProxy {
  /** Where clients connect: `server` through the proxy. */
  target: Target;
  /** From now on nothing passes either way, and nothing is closed. */
  stall(): void;
  close(): Promise<void>;
}

export async function startStallingProxy(server: Target): Promise<StallingProxy> {
  let stalled = false;
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    // A Unix socket directory (make node-test's cluster): the same cluster listens on loopback.
    const upstream = net.connect(server.port, server.host.startsWith("/") ? "127.0.0.1" : server.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    }
    client.on("data", (d) => void (stalled || upstream.write(d)));
    upstream.on("data", (d) => void (stalled || client.write(d)));
    client.on("close", () => void (stalled || upstream.destroy()));
    upstream.on("close", () => void (stalled || client.destroy()));
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = (proxy.address() as net.AddressInfo).port;
  return {
    target: { ...server, host: "127.0.0.1", port },
    stall: () => void (stalled = true),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
