import { isValidElement, Suspense, useEffect } from 'react';
import { createRoutesFromElements, matchRoutes, Navigate, NavLink, Outlet, Route, Routes, useLocation, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { ME, useLogout, useMe } from './auth';
import { LoginPage } from './pages/login/LoginPage';
import { PromptsList } from './pages/prompts/PromptsList';
import { PromptPage } from './pages/prompts/PromptPage';
import { ExecutionsList } from './pages/executions/ExecutionsList';
import { ExecutionPage } from './pages/executions/ExecutionPage';
import { KeysPage } from './pages/keys/KeysPage';
import { isLazyPage, lazyPage } from './lazyPage';

// The pages that need the code editor (CodeMirror) or the charts (uPlot) load on first use,
// so the lists paint without them; a full load of one of them preloads its chunk (`preloadRoute`).
const PromptEditor = lazyPage(() => import('./pages/prompts/PromptEditor').then((m) => m.PromptEditor));
const RunPage = lazyPage(() => import('./pages/prompts/RunPage').then((m) => m.RunPage));
const DiffPage = lazyPage(() => import('./pages/prompts/DiffPage').then((m) => m.DiffPage));
const DatasetsPage = lazyPage(() => import('./pages/experiments/DatasetsPage').then((m) => m.DatasetsPage));
const ExperimentsList = lazyPage(() => import('./pages/experiments/ExperimentsList').then((m) => m.ExperimentsList));
const NewExperiment = lazyPage(() => import('./pages/experiments/ExperimentsList').then((m) => m.NewExperiment));
const ExperimentPage = lazyPage(() => import('./pages/experiments/ExperimentPage').then((m) => m.ExperimentPage));
const MetricsPage = lazyPage(() => import('./pages/metrics/MetricsPage').then((m) => m.MetricsPage));

const ROUTES = (
  <>
    <Route path="/login" element={<LoginPage />} />
    <Route element={<Shell />}>
      <Route index element={<Navigate to="/prompts" replace />} />
      <Route path="/prompts" element={<PromptsList />} />
      <Route path="/prompts/new" element={<PromptEditor />} />
      <Route path="/prompts/:id" element={<PromptPage />} />
      <Route path="/prompts/:id/edit" element={<PromptEditor />} />
      <Route path="/prompts/:id/run" element={<RunPage />} />
      <Route path="/prompts/:id/diff" element={<DiffPage />} />
      <Route path="/executions" element={<ExecutionsList />} />
      <Route path="/executions/:id" element={<ExecutionPage />} />
      <Route path="/datasets" element={<DatasetsPage />} />
      <Route path="/experiments" element={<ExperimentsList />} />
      <Route path="/experiments/new" element={<NewExperiment />} />
      <Route path="/experiments/:id" element={<ExperimentPage />} />
      {/* `/metrics` is the server's Prometheus endpoint; the console's page is /stats. */}
      <Route path="/stats" element={<MetricsPage />} />
      <Route path="/keys" element={<KeysPage />} />
      <Route path="*" element={<p className="empty">No such page.</p>} />
    </Route>
  </>
);

export function App() {
  return <Routes>{ROUTES}</Routes>;
}

/** Starts loading the chunks of the lazily loaded pages that `pathname` shows (called at start-up). */
export function preloadRoute(pathname: string) {
  for (const { route } of matchRoutes(createRoutesFromElements(ROUTES), pathname) ?? []) {
    const page = isValidElement(route.element) ? route.element.type : undefined;
    if (isLazyPage(page)) page.preload();
  }
}

/** The signed-in frame: navigation, user menu, and the page. */
function Shell() {
  const me = useMe();
  const logout = useLogout();
  const navigate = useNavigate();
  const location = useLocation();
  const qc = useQueryClient();

  useEffect(() => {
    const onUnauthorized = () => qc.setQueryData(ME, null);
    window.addEventListener('formaops:unauthorized', onUnauthorized);
    return () => window.removeEventListener('formaops:unauthorized', onUnauthorized);
  }, [qc]);

  if (me.isPending) return <p className="loading">Loading…</p>;
  if (me.isError) return <p className="error-note">The server is unreachable: {me.error.message}</p>;
  if (!me.data) {
    const next = location.pathname + location.search;
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />;
  }
  const user = me.data;
  return (
    <div className="shell">
      <header className="topbar">
        <span className="brand">FormaOps</span>
        <nav aria-label="Main">
          <NavLink to="/prompts">Prompts</NavLink>
          <NavLink to="/executions">Executions</NavLink>
          <NavLink to="/experiments">Experiments</NavLink>
          <NavLink to="/stats">Metrics</NavLink>
          <NavLink to="/keys">API keys</NavLink>
        </nav>
        <details className="user-menu">
          <summary data-testid="user-menu">{user.email}</summary>
          <div className="menu">
            <p>{user.isAdmin ? 'Administrator' : 'User'}</p>
            <a href="/api/docs/" target="_blank" rel="noreferrer">
              API docs
            </a>
            <button
              type="button"
              data-testid="logout"
              onClick={() => logout.mutate(undefined, { onSettled: () => navigate('/login', { replace: true }) })}
            >
              Log out
            </button>
          </div>
        </details>
      </header>
      <main>
        <Suspense fallback={<p className="loading">Loading…</p>}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}
