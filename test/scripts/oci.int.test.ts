/** The registry client's three blob upload styles against a real registry (Debian docker-registry on loopback). */
import { beforeAll, describe, expect, it } from "vitest";
import { copyImage, parseRepository, RegistryClient, type UploadMode } from "../../scripts/lib/oci";
import { assertRegistriesUp, blobStatus, buildAndPush, getManifestRaw, imageTree, randomBytes, REGISTRY_A, REGISTRY_B, uniqueNamespace } from "./registry-fixtures";

const ns = uniqueNamespace("o");
const src = `${REGISTRY_A}/${ns}/web`;
let digest: string;

beforeAll(async () => {
  await assertRegistriesUp();
  digest = buildAndPush(src, "x", { "a.bin": randomBytes((1 << 20) + 12345), "b.txt": "b\n" }).digest;
}, 120_000);

describe("copyImage upload modes", () => {
  for (const mode of ["stream", "monolithic", "chunked"] as UploadMode[]) {
    it(`${mode}: every blob arrives intact and the manifest keeps its digest`, async () => {
      const a = new RegistryClient(REGISTRY_A, { credentials: async () => undefined });
      const b = new RegistryClient(REGISTRY_B, { credentials: async () => undefined, uploadMode: mode, chunkSize: 300 * 1024 });
      const target = `${REGISTRY_B}/${ns}/${mode}`;
      try {
        const r = await copyImage(a, parseRepository(src), b, parseRepository(target), digest);
        const tree = await imageTree(src, digest);
        expect(r.blobs.sort()).toEqual([...tree.blobs].sort());
        expect(b.stats.blobsUploaded).toBe(tree.blobs.length);
        expect(b.stats.bytesUploaded).toBeGreaterThan(1 << 20);
        // Per blob HEAD + POST + PATCH(es) + PUT (monolithic: no PATCH), then HEAD + PUT of the manifest;
        // chunked sends the 1 MiB + 12 KiB layer as 4 PATCHes of <= 300 KiB.
        const perBlob = mode === "monolithic" ? 3 : 4;
        expect(b.stats.requests).toBe(tree.blobs.length * perBlob + 2 + (mode === "chunked" ? 3 : 0));
        for (const d of tree.blobs) expect(await blobStatus(target, d)).toBe(200);
        const m = await getManifestRaw(target, digest);
        expect(m.status).toBe(200);
        expect(m.bytes.equals((await getManifestRaw(src, digest)).bytes)).toBe(true);
        // Copying again finds everything present and sends nothing.
        const before = b.stats.bytesUploaded;
        await copyImage(a, parseRepository(src), b, parseRepository(target), digest);
        expect(b.stats.bytesUploaded).toBe(before);
        expect(b.stats.blobsPresent).toBe(tree.blobs.length);
      } finally {
        a.close();
        b.close();
      }
    });
  }
});
