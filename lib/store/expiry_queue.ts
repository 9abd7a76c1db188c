/**
 * A binary min-heap of (expiresAtMs, id, slot) used by the memory store for lazy expiry:
 * popping everything due costs O(due · log n); nothing scans all entries and there is no timer
 * per entry. The store keeps at most one queued item per (id, slot) and re-queues an item
 * whose entry was refreshed after it was queued.
 */
export interface ExpiryItem<S> {
  atMs: number;
  id: string;
  slot: S;
}

/** See the module comment. */
export class ExpiryQueue<S> {
  private readonly heap: ExpiryItem<S>[] = [];

  /** Items queued. */
  get size(): number {
    return this.heap.length;
  }

  /** Queues an item. */
  push(item: ExpiryItem<S>): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as ExpiryItem<S>;
      if (p.atMs <= item.atMs) break;
      h[i] = p;
      i = parent;
    }
    h[i] = item;
  }

  /** Removes and returns the earliest item due at or before `nowMs`, or undefined. */
  popDue(nowMs: number): ExpiryItem<S> | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined || top.atMs > nowMs) return undefined;
    const last = h.pop() as ExpiryItem<S>;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const child = r < n && (h[r] as ExpiryItem<S>).atMs < (h[l] as ExpiryItem<S>).atMs ? r : l;
        const c = h[child] as ExpiryItem<S>;
        if (c.atMs >= last.atMs) break;
        h[i] = c;
        i = child;
      }
      h[i] = last;
    }
    return top;
  }

  /** Drops every item. */
  clear(): void {
    this.heap.length = 0;
  }
}
