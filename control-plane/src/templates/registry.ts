import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UnknownTemplateError } from '../errors.js';
import { templateSchema, type Template } from './template.js';

export class TemplateFileError extends Error {
  constructor(file: string, detail: string) {
    super(`template file ${file}: ${detail}`);
    this.name = 'TemplateFileError';
  }
}

/** Reads every `*.json` in the templates directory; a bad file stops start-up with its name. */
export async function loadTemplateFiles(dir: string): Promise<Template[]> {
  const out: Template[] = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.json')).sort()) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(join(dir, name), 'utf8'));
    } catch (err) {
      throw new TemplateFileError(name, (err as Error).message);
    }
    const parsed = templateSchema.safeParse(raw);
    if (!parsed.success) throw new TemplateFileError(name, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    out.push(parsed.data);
  }
  return out;
}

/** Templates known to this control plane, by name. */
export class TemplateRegistry {
  private readonly byName = new Map<string, Template>();

  constructor(templates: Template[]) {
    for (const t of templates) this.byName.set(t.name, t);
  }

  get(name: string): Template {
    const t = this.byName.get(name);
    if (!t) throw new UnknownTemplateError(name, this.names());
    return t;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  all(): Template[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
