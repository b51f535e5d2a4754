import { createContext, useContext } from "react";

import type { ApiClient } from "../api/client";
import type { ConfigInfo, WhoAmI } from "../api/types";

export interface Account {
  client: ApiClient;
  whoami: WhoAmI;
  config: ConfigInfo;
  logout: () => void;
}

export const AccountContext = createContext<Account | null>(null);

export function useAccount(): Account {
  const account = useContext(AccountContext);
  if (!account) throw new Error("useAccount is used outside a signed-in page");
  return account;
}

// The token lives for the tab only (sessionStorage), never in localStorage or a URL.
const TOKEN_KEY = "pravah.token";

export const tokenStore = {
  load: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  save: (token: string) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};
