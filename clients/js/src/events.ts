/** Handlers by event type, and queues for `for await` readers. */

import type { ClientEvent } from "./types.js";

export type Handler<E = ClientEvent> = (event: E) => void;

/** A queue of events read with `for await`; ends when the client closes for good. */
export class EventQueue implements AsyncIterableIterator<ClientEvent> {
  private readonly items: ClientEvent[] = [];
  private waiting: ((result: IteratorResult<ClientEvent>) => void) | null = null;
  private ended = false;

  constructor(private readonly detach: (queue: EventQueue) => void) {}

  push(event: ClientEvent): void {
    if (this.ended) return;
    if (this.waiting) {
      const wake = this.waiting;
      this.waiting = null;
      wake({ value: event, done: false });
    } else {
      this.items.push(event);
    }
  }

  /** No more events will come: the reader gets what is queued, then the end. */
  end(): void {
    this.ended = true;
    if (this.waiting && this.items.length === 0) {
      const wake = this.waiting;
      this.waiting = null;
      wake({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<ClientEvent>> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<ClientEvent>> {
    this.detach(this);
    this.items.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ClientEvent> {
    return this;
  }
}

/** Handlers registered by type ("*" for all), and the open queues. */
export class Emitter {
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly queues = new Set<EventQueue>();

  on(type: string, handler: Handler): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => this.off(type, handler);
  }

  off(type: string, handler: Handler): void {
    this.handlers.get(type)?.delete(handler);
  }

  queue(): EventQueue {
    const queue = new EventQueue((q) => this.queues.delete(q));
    this.queues.add(queue);
    return queue;
  }

  emit(event: ClientEvent): void {
    for (const queue of this.queues) queue.push(event);
    const handlers = [...(this.handlers.get(event.type) ?? []), ...(this.handlers.get("*") ?? [])];
    for (const handler of handlers) {
      try {
        handler(event);
      } catch (error) {
        if (event.type !== "error" && this.handlers.get("error")?.size) {
          this.emit({ type: "error", error });
        } else {
          console.error("concierge-client: an event handler threw", error);
        }
      }
    }
  }

  /** End every queue (the client closed for good). */
  endAll(): void {
    for (const queue of this.queues) queue.end();
    this.queues.clear();
  }
}
