// The current route, kept in step with the address bar.

import { parseRoute, type Route } from './routes';
export { href, type Route } from './routes';

class Router {
  route = $state<Route>(parseRoute(location.pathname, location.search));

  constructor() {
    window.addEventListener('popstate', () => {
      this.route = parseRoute(location.pathname, location.search);
    });
  }

  go(path: string) {
    if (path === location.pathname + location.search) return;
    history.pushState(null, '', path);
    this.route = parseRoute(location.pathname, location.search);
    window.scrollTo(0, 0);
  }
}

export const router = new Router();

/** For <a href> clicks: navigate in place unless the user wants a new tab. */
export function navigate(event: MouseEvent) {
  const anchor = event.currentTarget as HTMLAnchorElement;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  router.go(anchor.getAttribute('href') ?? '/');
}
