import { describe, expect, it } from 'vitest';
import { Keys } from '../../store/keys.js';
import { functionArn, parseFunctionName } from './shapes.js';

describe('function names and ARNs', () => {
  it('reads the tenant from an ARN\'s account id; a 12-digit AWS account id means the caller\'s own', () => {
    expect(parseFunctionName('hello')).toEqual({ name: 'hello' });
    expect(parseFunctionName('hello:3')).toEqual({ name: 'hello', qualifier: '3' });
    expect(parseFunctionName('arn:aws:lambda:us-east-1:alpha:function:hello:3')).toEqual({ name: 'hello', qualifier: '3', tenant: 'alpha' });
    expect(parseFunctionName('alpha:function:hello')).toEqual({ name: 'hello', tenant: 'alpha' });
    expect(parseFunctionName('arn:aws:lambda:us-east-1:000000000000:function:hello')).toEqual({ name: 'hello' });
    expect(parseFunctionName('123456789012:function:hello')).toEqual({ name: 'hello' });
    expect(() => parseFunctionName('arn:aws:lambda:us-east-1:Not_A_Tenant:function:hello')).toThrow(/not a tenant id/);
    expect(functionArn('alpha', 'hello', '2')).toBe('arn:aws:lambda:us-east-1:alpha:function:hello:2');
    expect(functionArn('alpha', 'hello', '$LATEST')).toBe('arn:aws:lambda:us-east-1:alpha:function:hello');
  });

  it('keeps the default tenant\'s function keys where they were before tenants, and puts every other tenant\'s apart', () => {
    const keys = new Keys('p');
    expect([keys.fn('default', 'hello'), keys.fns('default'), keys.fnVersions('default', 'hello'), keys.fnDeadLetters('default', 'hello')]).toEqual(['p:fn:hello', 'p:fns', 'p:fnver:hello', 'p:fndl:hello']);
    expect([keys.fn('alpha', 'hello'), keys.fns('alpha'), keys.fnVersionSeq('alpha', 'hello')]).toEqual(['p:fn:alpha:hello', 'p:fns:alpha', 'p:fnverseq:alpha:hello']);
  });
});
