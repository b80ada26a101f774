import { describe, expect, it } from 'vitest';
import { routeOf } from './aliases.js';
import { ALIAS_NAME } from './types.js';

describe('alias routing and names', () => {
  const alias = { name: 'canary', functionVersion: '1', description: '', additionalVersionWeights: { '2': 0.3 }, revisionId: 'r' };

  it('sends the weight\'s share to the additional version and the rest to the alias\'s own', () => {
    expect(routeOf(alias, () => 0)).toBe('2');
    expect(routeOf(alias, () => 0.2999)).toBe('2');
    expect(routeOf(alias, () => 0.3)).toBe('1');
    expect(routeOf(alias, () => 0.9999)).toBe('1');
    expect(routeOf({ ...alias, additionalVersionWeights: {} }, () => 0)).toBe('1');
    // Weight 0 never routes, weight 1 always does.
    expect(routeOf({ ...alias, additionalVersionWeights: { '2': 0 } }, () => 0)).toBe('1');
    expect(routeOf({ ...alias, additionalVersionWeights: { '2': 1 } }, () => 0.9999)).toBe('2');
  });

  it('follows AWS\'s name rule: never only digits, so an alias is never read as a version', () => {
    for (const ok of ['live', 'v1', '1a', 'a-b_c', 'x'.repeat(128)]) expect(ALIAS_NAME.test(ok), ok).toBe(true);
    for (const bad of ['1', '123', '$LATEST', 'a.b', 'a:b', '', 'x'.repeat(129)]) expect(ALIAS_NAME.test(bad), bad).toBe(false);
  });
});
