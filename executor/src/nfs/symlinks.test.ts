import { describe, expect, it } from 'vitest';
import { targetStaysInside } from './symlinks.js';

describe('symlink targets', () => {
  it('accept relative targets that stay below the export root', () => {
    expect(targetStaysInside(0, 'a/b')).toBe(true);
    expect(targetStaysInside(0, './a')).toBe(true);
    expect(targetStaysInside(1, '../sibling')).toBe(true);
    expect(targetStaysInside(2, '../../x/y')).toBe(true);
  });

  it('refuse absolute targets and targets that climb out', () => {
    expect(targetStaysInside(5, '/etc/passwd')).toBe(false);
    expect(targetStaysInside(0, '..')).toBe(false);
    expect(targetStaysInside(1, '../../x')).toBe(false);
    expect(targetStaysInside(0, '')).toBe(false);
  });

  it('refuse ".." after a name, which the kernel may resolve through another symlink', () => {
    expect(targetStaysInside(3, 'a/../b')).toBe(false);
    expect(targetStaysInside(0, 'self/..')).toBe(false);
  });
});
