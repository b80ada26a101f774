import { describe, expect, it } from 'vitest';
import { TransferBudget, VolumeTransfersBusyError } from './transfer-budget.js';

describe('TransferBudget', () => {
  it('lends up to its size at once and makes the rest wait their turn, first come first served', async () => {
    const budget = new TransferBudget(10, 5_000);
    const a = await budget.reserve(6);
    const b = await budget.reserve(4);
    expect(budget.reserved).toBe(10);
    const order: string[] = [];
    const big = budget.reserve(8).then((r) => (order.push('big'), r));
    const small = budget.reserve(1).then((r) => (order.push('small'), r));
    await new Promise((r) => setTimeout(r, 20));
    // The small one fits nowhere ahead of the big one that came first.
    expect(order).toEqual([]);
    b();
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    a();
    (await big)();
    (await small)();
    expect(order).toEqual(['big', 'small']);
    expect(budget.reserved).toBe(0);
  });

  it('refuses with 503 VolumeTransfersBusy after the wait, and lets those behind a refused one through', async () => {
    const budget = new TransferBudget(10, 100);
    const held = await budget.reserve(10);
    const refused = budget.reserve(5);
    await expect(refused).rejects.toBeInstanceOf(VolumeTransfersBusyError);
    await expect(budget.reserve(1)).rejects.toMatchObject({ code: 'VolumeTransfersBusy', status: 503 });
    held();
    const next = await budget.reserve(10);
    expect(budget.reserved).toBe(10);
    next();
  });

  it('clamps a reservation larger than itself to the whole budget, and a release counts once', async () => {
    const budget = new TransferBudget(10, 100);
    const all = await budget.reserve(1_000);
    expect(budget.reserved).toBe(10);
    all();
    all();
    expect(budget.reserved).toBe(0);
  });
});
