import { EventStreamContentType, fetchEventSource } from "@microsoft/fetch-event-source";

import { errorFrom } from "./client";
import type { JobSnapshot } from "./types";

export interface JobEventHandlers {
  onStatus: (snapshot: JobSnapshot) => void;
  /** The stream is over for good: the job finished, was deleted, or access is gone. */
  onEnd: (reason: "end" | "deleted" | "forbidden" | "error", message?: string) => void;
  onUnauthorized: () => void;
}

/** Thrown inside the stream callbacks to connect again after a pause. */
class Retry extends Error {}
/** Thrown inside the stream callbacks to stop for good. */
class Stop extends Error {}

const RETRY_MS = 3000;
const BUSY_RETRY_MS = 10000;

/**
 * Follows GET /jobs/{id}/events. EventSource cannot send an Authorization header and the
 * token must never travel in a URL, hence fetch-based Server-Sent Events. Returns a function
 * that closes the stream.
 */
export function followJob(eventsPath: string, token: string, handlers: JobEventHandlers): () => void {
  const controller = new AbortController();
  let finished = false;
  let reconnectAsked = false;
  let busy = false;

  const finish = (reason: "end" | "deleted" | "forbidden" | "error", message?: string) => {
    finished = true;
    handlers.onEnd(reason, message);
  };

  fetchEventSource(eventsPath, {
    headers: { Authorization: `Bearer ${token}` },
    signal: controller.signal,
    async onopen(response) {
      busy = false;
      const type = response.headers.get("content-type") ?? "";
      if (response.ok && type.startsWith(EventStreamContentType)) return;
      if (response.status === 401) {
        handlers.onUnauthorized();
        throw new Stop();
      }
      if (response.status === 429 || response.status >= 500) {
        busy = response.status === 429;
        throw new Retry();
      }
      const error = await errorFrom(response);
      finish(error.status === 403 ? "forbidden" : "error", error.message);
      throw new Stop();
    },
    onmessage(message) {
      const data = message.data ? JSON.parse(message.data) : {};
      switch (message.event) {
        case "status":
          handlers.onStatus(data as JobSnapshot);
          break;
        case "end":
          handlers.onStatus(data as JobSnapshot);
          finish("end");
          break;
        case "deleted":
          finish("deleted");
          break;
        case "forbidden":
        case "error":
          finish(message.event, data.message);
          break;
        case "reconnect":
          reconnectAsked = true;
          break;
      }
    },
    onclose() {
      // A stream that ends without a final event (its longest life, a dropped
      // connection) is opened again.
      if (!finished) throw new Retry();
    },
    onerror(error) {
      if (error instanceof Stop || finished) throw error;
      if (reconnectAsked) {
        reconnectAsked = false;
        return 0;
      }
      return busy ? BUSY_RETRY_MS : RETRY_MS;
    },
  }).catch(() => {
    // stopped on purpose (Stop) or closed: nothing left to do
  });
  return () => controller.abort();
}
