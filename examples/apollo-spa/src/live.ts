import type { Subscription } from 'rxjs';
import { client, wsClient } from './apollo';
import { endSession } from './auth';
import type { SessionEventsSubscription } from './gql/graphql';
import { sessionEventsSubscription } from './operations';
import { byTestId } from './ui';

// The signed-in view's "Live" part: the sessionEvents subscription over the WebSocket (apollo.ts) and a
// small feed of what happened to the user's sessions while the page is open. The socket's close
// handling (refresh on TOKEN_EXPIRED, log out on SESSION_REVOKED) lives in apollo.ts; this module shows
// the socket's state and the events, and logs the page out when an event says its own session ended.

export type SessionEvent = SessionEventsSubscription['sessionEvents'];

const ui = {
  state: byTestId<HTMLParagraphElement>('live-state'),
  feed: byTestId<HTMLOListElement>('live-feed'),
};

/** The feed keeps the newest events only. */
const FEED_LIMIT = 20;

let subscription: Subscription | null = null;

/** The socket's state, as data-state (for tests and styles) and as text. */
function showState(state: 'off' | 'connecting' | 'live' | 'reconnecting' | 'stopped', text: string): void {
  ui.state.dataset.state = state;
  ui.state.textContent = text;
}

/** "4403 TOKEN_EXPIRED": a close event, as shown and as kept in data-last-close. */
function describeClose(event: unknown): string {
  if (typeof event !== 'object' || event === null || !('code' in event)) return 'connection error';
  const { code, reason } = event as CloseEvent;
  return reason ? `${code} ${reason}` : String(code);
}

// The socket is the page's one graphql-ws connection: its events say what the feed can show.
wsClient.on('connecting', (isRetry) => {
  if (subscription) showState(isRetry ? 'reconnecting' : 'connecting', isRetry ? 'Reconnecting…' : 'Connecting…');
});
wsClient.on('connected', () => {
  if (!subscription) return;
  // How many times the socket was (re)connected: a reconnect after TOKEN_EXPIRED counts one more.
  ui.state.dataset.connections = String(Number(ui.state.dataset.connections ?? '0') + 1);
  showState('live', '● Live: sign-ins and sign-outs of your account show up here as they happen.');
});
wsClient.on('closed', (event) => {
  if (subscription) ui.state.dataset.lastClose = describeClose(event);
});

function describeEvent(event: SessionEvent): string {
  switch (event.type) {
    case 'SESSION_CREATED':
      return event.current ? 'This browser signed in.' : 'New sign-in to your account.';
    case 'SESSION_REVOKED':
      return event.current ? "This browser's session was signed out." : 'A session was signed out.';
    case 'PASSWORD_CHANGED':
      return 'Your password was changed.';
    default:
      return `${String(event.type)}.`;
  }
}

// textContent only: server data never goes into the page as HTML.
function addToFeed(event: SessionEvent): void {
  const item = document.createElement('li');
  item.dataset.testid = 'live-event';
  item.dataset.type = event.type;
  item.dataset.current = String(event.current);
  const time = document.createElement('time');
  time.dateTime = event.at;
  time.textContent = new Date(event.at).toLocaleTimeString();
  item.append(time, ` ${describeEvent(event)}`);
  ui.feed.prepend(item);
  while (ui.feed.childElementCount > FEED_LIMIT) ui.feed.lastElementChild?.remove();
}

/**
 * Subscribes to sessionEvents, unless already subscribed (loadAccount calls it on every refresh, which
 * also restarts a feed that stopped). `onEvent` runs after each event that leaves this page signed in
 * (main.ts reloads the sessions list); an event saying this page's own session was revoked logs the
 * page out instead, without waiting for the socket's close.
 */
export function startLive(onEvent: (event: SessionEvent) => void): void {
  if (subscription) return;
  ui.state.dataset.connections = '0';
  delete ui.state.dataset.lastClose;
  showState('connecting', 'Connecting…');
  const stopped = (why: string) => {
    subscription = null;
    showState('stopped', `Live updates stopped (${why}). "Refresh data" starts them again.`);
  };
  subscription = client.subscribe({ query: sessionEventsSubscription, fetchPolicy: 'no-cache' }).subscribe({
    next: (result) => {
      if (result.error) {
        // A link error (the socket closed for good: a 4403 that is not TOKEN_EXPIRED, or retries
        // exhausted) or a GraphQL error. Apollo completes the subscription after it.
        stopped(ui.state.dataset.lastClose ?? result.error.message);
        return;
      }
      const event = result.data?.sessionEvents;
      if (!event) return;
      addToFeed(event);
      if (event.type === 'SESSION_REVOKED' && event.current) {
        endSession(); // the login form at once; the server closes the socket with 4403 SESSION_REVOKED next
        return;
      }
      onEvent(event);
    },
    error: (err: unknown) => stopped(err instanceof Error ? err.message : String(err)),
    complete: () => {
      if (subscription) stopped(ui.state.dataset.lastClose ?? 'closed');
    },
  });
}

/** Unsubscribes (the socket closes with the last subscription) and empties the feed: the user logged out. */
export function stopLive(): void {
  const current = subscription;
  subscription = null;
  current?.unsubscribe();
  ui.feed.replaceChildren();
  delete ui.state.dataset.lastClose;
  showState('off', '');
}
