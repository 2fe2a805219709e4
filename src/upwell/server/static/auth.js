// Bearer tokens for servers that need one: asked for on the first 401, kept in sessionStorage
// (gone when the tab closes), sent as `Authorization: Bearer` on every request of the page.

const TOKEN_KEY = "upwell.token";

export function currentToken() {
  return window.sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
  else window.sessionStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new Event("upwell-token"));
}

/**
 * A fetch that adds the token and, on 401, awaits `askToken(refused)` (one prompt for all the
 * requests waiting on it) and tries again; when the person declines, the 401 is returned.
 */
export function authorizedFetch(askToken) {
  let asking = null;
  return async function authFetch(url, init = {}) {
    for (;;) {
      const sent = currentToken();
      const headers = new Headers(init.headers || {});
      if (sent) headers.set("Authorization", `Bearer ${sent}`);
      const response = await fetch(url, { ...init, headers });
      if (response.status !== 401) return response;
      if (currentToken() !== sent && currentToken()) continue; // a newer token came meanwhile
      if (!asking) {
        asking = Promise.resolve(askToken(Boolean(sent))).finally(() => {
          asking = null;
        });
      }
      const token = await asking;
      if (!token) return response;
      setToken(token);
    }
  };
}
