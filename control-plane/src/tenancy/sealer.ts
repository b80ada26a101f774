import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Seals secrets Kiln must be able to read back (an API key's secret, which SigV4 needs as the
 * HMAC key: a hash cannot verify a signature) with AES-256-GCM under a key kept outside Redis.
 * Whoever reads Redis alone (a backup, a replica, a stolen dump) gets no usable credential.
 */
export class Sealer {
  private constructor(private readonly key: Buffer) {}

  /**
   * The key from KILN_SECRET_KEY (32 bytes, base64 or hex; every replica of a deployment needs
   * the same), else from `file`, made 0600 with a random key on first use (one host).
   */
  static async open(fromEnv: string | undefined, file: string): Promise<Sealer> {
    if (fromEnv) return new Sealer(parseKey(fromEnv, 'KILN_SECRET_KEY'));
    try {
      return new Sealer(parseKey((await readFile(file, 'utf8')).trim(), file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    // 'wx': two processes starting at once must not each write their own; the loser reads the winner's.
    try {
      await writeFile(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
      return new Sealer(key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return new Sealer(parseKey((await readFile(file, 'utf8')).trim(), file));
    }
  }

  /**
   * A key for one purpose (signing URLs, ...) derived from the sealing key, so every replica of a
   * deployment derives the same and no purpose's key reveals the sealing key or another's.
   */
  derive(purpose: string): Buffer {
    return createHmac('sha256', this.key).update(`kiln:${purpose}`).digest();
  }

  /** A sealer with a given key (tests). */
  static of(key: Buffer): Sealer {
    return new Sealer(key);
  }

  /** iv (12) | tag (16) | ciphertext, base64. `context` binds the box to what it is for (the key id). */
  seal(plain: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
  }

  /** The sealed text, or undefined when the box was not sealed with this key for this context. */
  open(box: string, context: string): string | undefined {
    try {
      const raw = Buffer.from(box, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}

function parseKey(text: string, where: string): Buffer {
  const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32) throw new Error(`${where} must hold a 32-byte key, base64 or hex (openssl rand -base64 32)`);
  return key;
}
