/** The Docker Engine API on the local socket, as the Docker provider calls it (tests that play the provider). */
import * as http from "node:http";

/** One Engine API call (API 1.41, Debian's dockerd 20.10); rejects on a status >= 300 with the daemon's message. */
export function dockerApi<T = unknown>(method: string, p: string, body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      { socketPath: "/var/run/docker.sock", method, path: `/v1.41${p}`, headers: data ? { "Content-Type": "application/json", "Content-Length": data.length } : {} },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${p}: ${res.statusCode} ${text.trim()}`));
          else resolve((text ? JSON.parse(text) : undefined) as T);
        });
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}
