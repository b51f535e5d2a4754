import { useState, type FormEvent } from "react";

import { ApiError, fetchPublic } from "../api/client";
import type { AuthMode } from "../api/types";

interface Props {
  authMode: AuthMode;
  /** Checks the token (GET /auth/whoami); rejects with the API's error when it is refused. */
  onToken: (token: string) => Promise<void>;
  notice?: string | null;
}

export function LoginPage({ authMode, onToken, notice }: Props) {
  const [token, setToken] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (authMode === "standalone") {
        const answer = await fetchPublic<{ access_token: string }>("/auth/token", { username, password });
        await onToken(answer.access_token);
      } else {
        await onToken(token.trim());
      }
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : "The API cannot be reached.");
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form data-testid="login-form" className="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Pravah</h1>
        {notice && <p className="notice">{notice}</p>}
        {authMode === "standalone" ? (
          <>
            <label htmlFor="login-username">User name</label>
            <input id="login-username" data-testid="login-username" autoComplete="username" required
              value={username} onChange={(event) => setUsername(event.target.value)} />
            <label htmlFor="login-password">Password</label>
            <input id="login-password" data-testid="login-password" type="password" autoComplete="current-password"
              required value={password} onChange={(event) => setPassword(event.target.value)} />
          </>
        ) : (
          <>
            <label htmlFor="login-token">Kubernetes bearer token</label>
            <textarea id="login-token" data-testid="login-token" required rows={4} spellCheck={false}
              autoComplete="off" value={token} onChange={(event) => setToken(event.target.value)}
              aria-describedby="login-token-help" />
            <p id="login-token-help" className="hint">
              For example the output of <code>kubectl create token &lt;service-account&gt;</code>.
            </p>
          </>
        )}
        <button type="submit" data-testid="login-submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error && <p data-testid="login-error" className="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}
