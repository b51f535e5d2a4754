import { lazy, Suspense, useCallback, useEffect, useMemo, useState } from "react";
import { NavLink, Route, Routes } from "react-router";

import { ApiClient, ApiError, fetchPublic } from "./api/client";
import type { ConfigInfo, WhoAmI } from "./api/types";
import { LoginPage } from "./auth/LoginPage";
import { AccountContext, tokenStore, type Account } from "./auth/account";
import { JobsPage } from "./jobs/JobsPage";

// The charts and the form generator are large: loaded when their page is first opened.
const JobPage = lazy(() => import("./job/JobPage").then((module) => ({ default: module.JobPage })));
const SubmitPage = lazy(() => import("./submit/SubmitPage").then((module) => ({ default: module.SubmitPage })));

type SignIn = { token: string; whoami: WhoAmI } | null;

export function App() {
  const [config, setConfig] = useState<ConfigInfo | null>(null);
  const [configError, setConfigError] = useState<string | null>(null);
  const [signIn, setSignIn] = useState<SignIn>(null);
  const [checkingStoredToken, setCheckingStoredToken] = useState(() => tokenStore.load() !== null);
  const [notice, setNotice] = useState<string | null>(null);

  const logout = useCallback((why?: string) => {
    tokenStore.clear();
    setSignIn(null);
    setNotice(why ?? null);
  }, []);

  const expired = useCallback(() => logout("You were signed out: the token expired or was revoked. Please sign in again."), [logout]);

  const acceptToken = useCallback(async (token: string) => {
    const probe = new ApiClient(token, () => undefined);
    const whoami = await probe.get<WhoAmI>("/auth/whoami");
    tokenStore.save(token);
    setNotice(null);
    setSignIn({ token, whoami });
  }, []);

  useEffect(() => {
    fetchPublic<ConfigInfo>("/config").then(setConfig, (error: unknown) =>
      setConfigError(error instanceof ApiError ? error.message : "The API cannot be reached."));
    const stored = tokenStore.load();
    if (stored) {
      acceptToken(stored).catch(() => tokenStore.clear()).finally(() => setCheckingStoredToken(false));
    }
  }, [acceptToken]);

  const account = useMemo<Account | null>(() => {
    if (!signIn || !config) return null;
    return { client: new ApiClient(signIn.token, expired), whoami: signIn.whoami, config, logout: () => logout() };
  }, [signIn, config, expired, logout]);

  if (configError) {
    return <main className="page"><p className="error" role="alert">{configError}</p></main>;
  }
  if (!config || checkingStoredToken) {
    return <main className="page"><p role="status">Loading…</p></main>;
  }
  if (!account) {
    return <LoginPage authMode={config.authMode} onToken={acceptToken} notice={notice} />;
  }
  return (
    <AccountContext.Provider value={account}>
      <header className="topbar">
        <NavLink to="/" className="brand">Pravah</NavLink>
        <nav aria-label="Main">
          <NavLink to="/" end>Jobs</NavLink>
          <NavLink to="/new">New job</NavLink>
        </nav>
        <span className="who" title={account.whoami.groups.join(", ")}>
          {account.whoami.name}{account.whoami.role ? ` (${account.whoami.role})` : ""}
        </span>
        <button type="button" onClick={account.logout}>Sign out</button>
      </header>
      <Suspense fallback={<main className="page"><p role="status">Loading…</p></main>}>
        <Routes>
          <Route path="/" element={<JobsPage />} />
          <Route path="/new" element={<SubmitPage />} />
          <Route path="/jobs/:id" element={<JobPage />} />
          <Route path="*" element={<main className="page"><p>No such page.</p><NavLink to="/">Jobs</NavLink></main>} />
        </Routes>
      </Suspense>
    </AccountContext.Provider>
  );
}
