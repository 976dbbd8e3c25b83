// Pages loaded on first use (code splitting), with a preload for the page a full load lands on.
//
// Why not `React.lazy` alone: on a full load of such a page (a reload of /stats, a shared link)
// the chunk was only requested once the signed-in shell rendered, and the shell's <Suspense>
// fallback was committed meanwhile; React then holds the page back until 300 ms after that
// fallback (its Suspense throttle), and the page's queries only start when it mounts. Measured
// on /stats: chunk in at ~90 ms, queries started at ~390 ms. Now `preloadRoute` starts the chunk
// at start-up, alongside `GET /api/auth/me`, and a page mounted while its preload is in flight
// shows the same "Loading…" without suspending, so no fallback is committed and nothing is
// throttled. In-app navigation keeps `React.lazy`: React Router's transitions keep the old page
// on screen while a chunk loads, so no fallback is shown there either.
import { type ComponentType, lazy, useEffect, useState } from 'react';

export interface LazyPage<P extends object> {
  (props: P): React.JSX.Element;
  /** Starts loading the chunk (once); a failure is left to the render, as with `React.lazy`. */
  preload(): void;
}

export function lazyPage<P extends object>(load: () => Promise<ComponentType<P>>): LazyPage<P> {
  let loaded: ComponentType<P> | undefined;
  let pending: Promise<ComponentType<P>> | undefined;
  const fetchOnce = () =>
    (pending ??= load().then((c) => {
      loaded = c;
      return c;
    }));
  const Lazy = lazy(() => fetchOnce().then((c) => ({ default: c })));
  function Page(props: P) {
    // Decided at mount and kept: switching from <Lazy> to the component would remount the page.
    const [Loaded, setLoaded] = useState(() => loaded);
    const [waiting, setWaiting] = useState(() => !loaded && pending !== undefined);
    useEffect(() => {
      if (!waiting) return;
      let live = true;
      fetchOnce().then(
        (c) => live && setLoaded(() => c),
        // Rendered through <Lazy>, the failure reaches the render as it always did.
        () => live && setWaiting(false),
      );
      return () => {
        live = false;
      };
    }, [waiting]);
    if (Loaded) return <Loaded {...props} />;
    return waiting ? <p className="loading">Loading…</p> : <Lazy {...props} />;
  }
  Page.preload = () => {
    fetchOnce().catch(() => undefined);
  };
  return Page;
}

/** True for a component made by `lazyPage`. */
export function isLazyPage(c: unknown): c is LazyPage<object> {
  return typeof c === 'function' && typeof (c as Partial<LazyPage<object>>).preload === 'function';
}
