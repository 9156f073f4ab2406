// Runs a statement that an AbortSignal may cancel, the same way for every driver.
import { QUERY_CANCELED, sqlstate, type Ran, type Row } from "./types.js";

/**
 * `exec` sends the statement; `cancel` asks the server to cancel it and resolves once the
 * request is delivered. Abort before the answer: the statement fails with 57014 and we report
 * `signal.reason` instead. Abort that loses the race (the answer was already on its way): we
 * wait for the cancel to be delivered, so it cannot hit a later statement, and report
 * `abortedLate` for the caller to undo what the statement took.
 */
export async function runAbortable<R extends Row>(
  signal: AbortSignal | undefined,
  exec: () => Promise<R[]>,
  cancel: (settled: () => boolean) => Promise<void>,
): Promise<Ran<R>> {
  if (!signal) return { rows: await exec(), abortedLate: false };
  signal.throwIfAborted();
  let settled = false;
  let cancelling: Promise<void> | undefined;
  const onAbort = () => {
    cancelling = cancel(() => settled).catch(() => undefined);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const rows = await exec();
    settled = true;
    if (cancelling) await cancelling;
    return { rows, abortedLate: cancelling !== undefined };
  } catch (error) {
    settled = true;
    if (cancelling) {
      await cancelling;
      if (sqlstate(error) === QUERY_CANCELED) throw signal.reason;
    }
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Milliseconds between repeated cancels while the statement has not ended yet. */
export const CANCEL_REPEAT_MS = 100;

/**
 * Sends `pg_cancel_backend` (through `send`) until the statement has ended: a cancel that
 * reaches the backend between statements (the waiting statement not started yet) is ignored
 * by the server, so one is not enough.
 */
export async function cancelUntilSettled(send: () => Promise<unknown>, settled: () => boolean): Promise<void> {
  while (!settled()) {
    await send();
    await new Promise((resolve) => setTimeout(resolve, CANCEL_REPEAT_MS));
  }
}

/**
 * `pending` (a pool's connection, or a transaction not begun yet) raced against `signal`: an
 * abort rejects at once with `signal.reason`, and `undo` gets what `pending` delivers later.
 */
export function unlessAborted<T>(pending: Promise<T>, signal: AbortSignal | undefined, undo: (late: T) => void): Promise<T> {
  if (!signal) return pending;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) undo(value);
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
