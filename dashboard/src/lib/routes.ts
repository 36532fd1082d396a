// Client-side routes on real paths (the server answers index.html for them), so a
// reload or a shared link opens the same view.

export type Route =
  | { view: 'overview' }
  | { view: 'service'; name: string }
  | { view: 'rollout'; id: string }
  | { view: 'deploy'; service: string | null }
  | { view: 'audit' }
  | { view: 'incidents' }
  | { view: 'incident'; id: string }
  | { view: 'not-found'; path: string };

export function parseRoute(path: string, search = ''): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { view: 'overview' };
  if (parts[0] === 'services' && parts.length === 2) return { view: 'service', name: parts[1] };
  if (parts[0] === 'rollouts' && parts.length === 2) return { view: 'rollout', id: parts[1] };
  if (parts[0] === 'deploy' && parts.length === 1) {
    return { view: 'deploy', service: new URLSearchParams(search).get('service') };
  }
  if (parts[0] === 'audit' && parts.length === 1) return { view: 'audit' };
  if (parts[0] === 'incidents' && parts.length === 1) return { view: 'incidents' };
  if (parts[0] === 'incidents' && parts.length === 2) return { view: 'incident', id: parts[1] };
  return { view: 'not-found', path };
}

export function href(route: Route): string {
  switch (route.view) {
    case 'overview':
      return '/';
    case 'service':
      return `/services/${encodeURIComponent(route.name)}`;
    case 'rollout':
      return `/rollouts/${encodeURIComponent(route.id)}`;
    case 'deploy':
      return route.service ? `/deploy?service=${encodeURIComponent(route.service)}` : '/deploy';
    case 'audit':
      return '/audit';
    case 'incidents':
      return '/incidents';
    case 'incident':
      return `/incidents/${encodeURIComponent(route.id)}`;
    case 'not-found':
      return route.path;
  }
}

