// Admission of generations: MAX_CONCURRENT slots per edge process, shared by chat, completions and
// translation (one slot per generation: a chat or completion is one, a translation takes one per sentence
// it computes while it computes it). When all slots are taken a request waits, for a bounded time in a
// bounded queue, and a freed slot goes to the waiting API key with the fewest generations running (ties:
// the key served least recently, so keys take turns) — then, within that key, to the request with the
// fewest running — so that one key's flood (or one long translation) cannot starve another key's single
// chat. No I/O: timers and abort signals only.

/** A request refused a slot: answer 429 with Retry-After. */
export class AdmissionRefused extends Error {
  readonly retryAfterS = 1;
}

/** Ends one generation's hold on its slot; calling it again does nothing. */
export type ReleaseSlot = () => void;

export interface AdmissionOptions {
  /** Generations running at once (MAX_CONCURRENT). */
  slots: number;
  /** Longest wait of a request for its first slot, in ms (0: refuse at once when full). */
  maxWaitMs: number;
  /** Requests waiting for their first slot at once (default: as many as there are slots, so that a
   * burst beyond twice the slots is told at once to retry rather than queued for seconds). */
  maxWaiting?: number;
}

interface Waiter {
  request: RequestAdmission;
  seq: number;
  grant: (release: ReleaseSlot) => void;
  refuse: (e: unknown) => void;
}

export class GenerationAdmission {
  private running_ = 0;
  /** Keys running or waiting: slots held, and when one was last granted (kept while the key waits). */
  private readonly tenants = new Map<string, { running: number; lastGrant: number }>();
  private grants = 0;
  private readonly waiters: Waiter[] = [];
  private seq = 0;
  private readonly maxWaiting: number;
  /** Requests refused a slot (queue full or waited too long), for metrics. */
  refused = 0;

  constructor(private readonly o: AdmissionOptions) {
    if (!(o.slots >= 1)) throw new RangeError("admission needs at least one slot");
    this.maxWaiting = o.maxWaiting ?? o.slots;
  }

  /** Generations holding a slot now. */
  get running(): number {
    return this.running_;
  }

  /** Generations waiting for a slot now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Slots held by one tenant's generations. */
  runningFor(tenant: string): number {
    return this.tenants.get(tenant)?.running ?? 0;
  }

  /** One request's admission: its generations are one unit of work of `tenant` (the API key, "" without). */
  request(tenant: string): RequestAdmission {
    return new RequestAdmission(this, tenant);
  }

  /** A slot for a one-generation request (chat, completion). */
  acquire(tenant: string, signal?: AbortSignal): Promise<ReleaseSlot> {
    return this.request(tenant).acquire(signal);
  }

  /** @internal */
  enqueue(request: RequestAdmission, signal?: AbortSignal): Promise<ReleaseSlot> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Slots free means nobody waits (every release hands its slot on at once).
    if (this.running_ < this.o.slots) return Promise.resolve(this.take(request));
    // A request already generating (a translation between sentences) is admitted: it neither counts
    // against the queue bound nor times out while it runs something (its own concurrency bounds its
    // waiters). Only requests with nothing running yet are bounded and refused.
    if (request.running === 0) {
      if (this.o.maxWaitMs <= 0) return this.refuse(`all ${this.o.slots} generation slots are busy`);
      const fresh = this.waiters.filter((w) => w.request.running === 0);
      if (fresh.length >= this.maxWaiting && !this.shedFor(request.tenant, fresh)) return this.refuse(`all ${this.o.slots} generation slots are busy and ${fresh.length} requests wait`);
    }
    return new Promise<ReleaseSlot>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        this.forgetIdle(request.tenant);
      };
      const waiter: Waiter = {
        request,
        seq: this.seq++,
        grant: (release) => {
          settle();
          resolve(release);
        },
        refuse: (e) => {
          settle();
          reject(e);
        },
      };
      const onAbort = () => waiter.refuse(signal!.reason);
      const deadline = () => {
        // Still generating something of its own: it is making progress, so it keeps its place.
        if (request.running > 0) timer = setTimeout(deadline, this.o.maxWaitMs);
        else {
          this.refused++;
          waiter.refuse(new AdmissionRefused(`no generation slot freed within ${this.o.maxWaitMs} ms (${this.o.slots} busy)`));
        }
      };
      timer = setTimeout(deadline, Math.max(1, this.o.maxWaitMs));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
      this.tenant(request.tenant);
    });
  }

  /** The queue is full: the most loaded tenant's newest fresh waiter makes room, if that tenant holds more than `tenant` would. */
  private shedFor(tenant: string, fresh: Waiter[]): boolean {
    const load = (t: string) => this.runningFor(t) + fresh.filter((w) => w.request.tenant === t).length;
    let victim: Waiter | undefined;
    for (const w of fresh) if (!victim || load(w.request.tenant) > load(victim.request.tenant) || (w.request.tenant === victim.request.tenant && w.seq > victim.seq)) victim = w;
    if (!victim || victim.request.tenant === tenant || load(victim.request.tenant) <= load(tenant) + 1) return false;
    this.refused++;
    victim.refuse(new AdmissionRefused(`generation queue full: a request of a key holding ${load(victim.request.tenant)} generations made room for another key`));
    return true;
  }

  private refuse(message: string): Promise<never> {
    this.refused++;
    return Promise.reject(new AdmissionRefused(message));
  }

  private tenant(name: string) {
    let t = this.tenants.get(name);
    if (!t) {
      t = { running: 0, lastGrant: -1 };
      this.tenants.set(name, t);
    }
    return t;
  }

  /** A key neither running nor waiting is forgotten: the map holds only keys active now. */
  private forgetIdle(name: string): void {
    if (this.runningFor(name) === 0 && !this.waiters.some((w) => w.request.tenant === name)) this.tenants.delete(name);
  }

  private take(request: RequestAdmission): ReleaseSlot {
    const t = this.tenant(request.tenant);
    this.running_++;
    request.running++;
    t.running++;
    t.lastGrant = this.grants++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running_--;
      request.running--;
      t.running--;
      this.forgetIdle(request.tenant);
      this.handOn();
    };
  }

  /** Free slots to waiters: the key with the fewest running, then the one served least recently, then
   * that key's request with the fewest running, then the oldest waiter. */
  private handOn(): void {
    while (this.running_ < this.o.slots && this.waiters.length) {
      let best = this.waiters[0];
      let bt = this.tenant(best.request.tenant);
      for (const w of this.waiters) {
        const wt = this.tenant(w.request.tenant);
        const order = wt.running - bt.running || wt.lastGrant - bt.lastGrant || w.request.running - best.request.running || w.seq - best.seq;
        if (order < 0) {
          best = w;
          bt = wt;
        }
      }
      best.grant(this.take(best.request));
    }
  }
}

/** One request's share: slots taken through it count as that request's (and its tenant's) generations. */
export class RequestAdmission {
  /** Slots this request holds now. */
  running = 0;

  constructor(
    private readonly admission: GenerationAdmission,
    readonly tenant: string,
  ) {}

  /** A slot for one generation; rejects with AdmissionRefused, or with the signal's reason when it aborts first. */
  acquire(signal?: AbortSignal): Promise<ReleaseSlot> {
    return this.admission.enqueue(this, signal);
  }
}
