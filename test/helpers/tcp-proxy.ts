// A TCP proxy in front of a server, for outages a test switches on and off: `down()` drops every
// open connection and refuses new ones (accepted, then reset at once), `up()` lets them through
// again. The address in front never changes, so clients reconnect by themselves once it is up.
import net from 'node:net';

export interface TcpProxy {
  address: string;
  down(): void;
  up(): void;
  /** Connections refused while down. */
  refused(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const open = new Set<net.Socket>();
  let isDown = false;
  let refused = 0;
  const server = net.createServer((client) => {
    if (isDown) {
      refused += 1;
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: local } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${local}`,
    down() {
      isDown = true;
      for (const s of open) s.resetAndDestroy();
    },
    up() {
      isDown = false;
    },
    refused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
