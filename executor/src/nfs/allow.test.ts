import { describe, expect, it } from 'vitest';
import { isAllowed, normalizeAddress } from './allow.js';

describe('allow-lists', () => {
  it('allow everyone when empty or undefined', () => {
    expect(isAllowed(undefined, '10.0.0.1')).toBe(true);
    expect(isAllowed([], '::1')).toBe(true);
  });

  it('match single addresses and CIDRs, IPv4 and IPv6', () => {
    const allow = ['127.0.0.1', '10.1.0.0/16', 'fd00::/8', '2001:db8::5'];
    expect(isAllowed(allow, '127.0.0.1')).toBe(true);
    expect(isAllowed(allow, '127.0.0.2')).toBe(false);
    expect(isAllowed(allow, '10.1.200.3')).toBe(true);
    expect(isAllowed(allow, '10.2.0.1')).toBe(false);
    expect(isAllowed(allow, 'fd12::1')).toBe(true);
    expect(isAllowed(allow, '2001:db8::5')).toBe(true);
    expect(isAllowed(allow, '2001:db8::6')).toBe(false);
  });

  it('treat IPv4-mapped IPv6 peers as IPv4', () => {
    expect(normalizeAddress('::ffff:192.168.1.9')).toBe('192.168.1.9');
    expect(isAllowed(['192.168.1.0/24'], '::ffff:192.168.1.9')).toBe(true);
  });

  it('fail closed on garbage entries and unknown peers', () => {
    expect(isAllowed(['not-an-ip', '10.0.0.0/99'], '10.0.0.1')).toBe(false);
    expect(isAllowed(['10.0.0.1'], undefined)).toBe(false);
  });
});
