import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from './api.js';

/** Loads with `load`, again every `everyMs` when given (paused while the tab is hidden), and on `reload()`. */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], everyMs?: number): { data: T | undefined; error: string | undefined; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    load().then(
      (d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(undefined);
      },
      (e: unknown) => {
        if (mine === seq.current) setError(errorText(e));
      },
    );
  }, deps);
  useEffect(() => {
    run();
    if (!everyMs) return undefined;
    const t = setInterval(() => {
      if (!document.hidden) run();
    }, everyMs);
    return () => clearInterval(t);
  }, [run, everyMs]);
  return { data, error, reload: run };
}
