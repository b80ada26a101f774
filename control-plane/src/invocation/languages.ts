/**
 * The one table of what Kiln runs: each Lambda runtime identifier, the language runner that
 * serves it inside a sandbox, the template that serves it by default, the handler a function
 * gets when none is given, and the file inline code becomes. Ad-hoc executions and sessions
 * name a language instead of a runtime; `LANGUAGES` maps those names onto the same rows.
 *
 * Everything else (template validation, executor environment, function defaults, code
 * packaging, request schemas) reads this table instead of spelling the names again.
 */
export const RUNTIMES = {
  'nodejs20.x': { runner: 'nodejs', template: 'nodejs', defaultHandler: 'index.handler' },
  'python3.11': { runner: 'python', template: 'python', defaultHandler: 'index.handler' },
  provided: { runner: 'provided', template: 'provided', defaultHandler: 'function.handler' },
  'provided.al2023': { runner: 'provided', template: 'provided', defaultHandler: 'function.handler' },
} as const satisfies Record<string, { runner: Runner; template: string; defaultHandler: string }>;

/** A Lambda runtime identifier Kiln accepts. */
export type LambdaRuntime = keyof typeof RUNTIMES;
/** A language runner inside a sandbox (executor/src/lambda). */
export type Runner = 'nodejs' | 'python' | 'provided';

export const RUNTIME_NAMES = Object.keys(RUNTIMES) as [LambdaRuntime, ...LambdaRuntime[]];

/** Languages of ad-hoc executions and session `execute` → their Lambda runtime. */
export const LANGUAGES = { nodejs: 'nodejs20.x', python: 'python3.11' } as const satisfies Record<string, LambdaRuntime>;
export type Language = keyof typeof LANGUAGES;
export const LANGUAGE_NAMES = Object.keys(LANGUAGES) as [Language, ...Language[]];

export function isLambdaRuntime(name: string): name is LambdaRuntime {
  return Object.hasOwn(RUNTIMES, name);
}

/** The runner that serves a runtime. */
export function runnerOf(runtime: LambdaRuntime): Runner {
  return RUNTIMES[runtime].runner;
}

/** The language whose runner is `runner`, if any (a `provided` sandbox has none). */
export function languageOfRunner(runner: string): Language | undefined {
  return LANGUAGE_NAMES.find((l) => RUNTIMES[LANGUAGES[l]].runner === runner);
}

/**
 * The file that inline source for `handler` becomes, named after the handler's module as
 * Lambda's console does. Node's file is ESM (.mjs) when the code uses `export`, as users of
 * .mjs handlers expect; a custom runtime's code is its executable `bootstrap`.
 */
export function handlerFile(runtime: LambdaRuntime, handler: string, code: string): { path: string; mode: number } {
  const runner = runnerOf(runtime);
  if (runner === 'provided') return { path: 'bootstrap', mode: 0o755 };
  const module = handler.slice(0, handler.lastIndexOf('.')) || 'index';
  if (runner === 'python') return { path: `${module.replaceAll('.', '/')}.py`, mode: 0o644 };
  return { path: `${module}${/^\s*export\s/m.test(code) ? '.mjs' : '.js'}`, mode: 0o644 };
}
