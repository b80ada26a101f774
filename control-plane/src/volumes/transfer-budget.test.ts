import { describe, expect, it } from 'vitest';
import { TransferBudget, VolumeTransfersBusyError } from './transfer-budget.js';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('TransferBudget', () => {
  it('lends up to its size at once and makes the rest wait their turn, first come first served', async () => {
    const budget = new TransferBudget(10, 5_000);
    const a = await budget.reserve('t1', 6);
    const b = await budget.reserve('t2', 4);
    expect(budget.reserved()).toBe(10);
    const order: string[] = [];
    const big = budget.reserve('t3', 8).then((r) => (order.push('big'), r));
    const small = budget.reserve('t4', 1).then((r) => (order.push('small'), r));
    await tick();
    // The small one does not overtake the big one that came first.
    expect(order).toEqual([]);
    b();
    await tick();
    expect(order).toEqual([]);
    a();
    (await big)();
    (await small)();
    expect(order).toEqual(['big', 'small']);
    expect(budget.reserved()).toBe(0);
  });

  it('gives one tenant at most half while it has more than one transfer, and lets other tenants pass it', async () => {
    const budget = new TransferBudget(100, 5_000);
    const first = await budget.reserve('greedy', 40);
    // A second one of the same tenant would pass its half: it waits, while another tenant goes ahead of it.
    let second: (() => void) | undefined;
    const waiting = budget.reserve('greedy', 20).then((r) => (second = r));
    const other = await budget.reserve('modest', 30);
    await tick();
    expect(second).toBeUndefined();
    expect(budget.reserved('greedy')).toBe(40);
    first();
    await waiting;
    expect(budget.reserved('greedy')).toBe(20);
    second?.();
    other();
    // One transfer alone may take more than half (a large volume's sync), and the whole budget.
    const alone = await budget.reserve('greedy', 100);
    expect(budget.reserved()).toBe(100);
    alone();
  });

  it('refuses with 503 VolumeTransfersBusy after the wait, and lets those behind a refused one through', async () => {
    const budget = new TransferBudget(10, 100);
    const held = await budget.reserve('t1', 10);
    await expect(budget.reserve('t2', 5)).rejects.toBeInstanceOf(VolumeTransfersBusyError);
    await expect(budget.reserve('t3', 1)).rejects.toMatchObject({ code: 'VolumeTransfersBusy', status: 503 });
    held();
    const next = await budget.reserve('t2', 10);
    expect(budget.reserved()).toBe(10);
    next();
  });

  it('refuses at once a reservation larger than itself, and a release counts once', async () => {
    const budget = new TransferBudget(10, 100);
    await expect(budget.reserve('t1', 11)).rejects.toMatchObject({ code: 'VolumeTransferTooLarge', status: 503 });
    const all = await budget.reserve('t1', 10);
    all();
    all();
    expect(budget.reserved()).toBe(0);
    expect(budget.reserved('t1')).toBe(0);
  });
});
