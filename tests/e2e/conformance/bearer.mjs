// Loaded with `node --import` into the conformance suite's `server` command, which has no
// option for credentials: every request it sends to the MCP endpoint (CONFORMANCE_MCP_URL)
// carries `Authorization: Bearer $CONFORMANCE_BEARER`, a token the driver obtained through
// the consent flow. Node's fetch and undici's request both go through the global dispatcher
// set here; requests anywhere else, and requests that already name an Authorization
// header, pass unchanged.

import { Agent, setGlobalDispatcher } from 'undici';

const token = process.env.CONFORMANCE_BEARER;
const mcp = new URL(process.env.CONFORMANCE_MCP_URL);
if (!token) throw new Error('bearer.mjs: CONFORMANCE_BEARER is not set');

function withBearer(headers) {
  const value = `Bearer ${token}`;
  if (headers == null) return { authorization: value };
  if (Array.isArray(headers)) {
    // [name, value, name, value, …] or [[name, value], …]
    const flat = Array.isArray(headers[0]) ? headers.flat() : headers;
    for (let i = 0; i < flat.length; i += 2) if (String(flat[i]).toLowerCase() === 'authorization') return headers;
    return [...flat, 'authorization', value];
  }
  if (typeof headers[Symbol.iterator] === 'function' && typeof headers.entries === 'function') {
    const copy = Object.fromEntries(headers.entries());
    return 'authorization' in copy ? headers : { ...copy, authorization: value };
  }
  if (Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) return headers;
  return { ...headers, authorization: value };
}

const addBearer = (dispatch) => (opts, handler) => {
  const origin = typeof opts.origin === 'string' ? opts.origin : opts.origin?.origin;
  const path = (opts.path ?? '').split('?')[0];
  if (origin === mcp.origin && path === mcp.pathname) {
    return dispatch({ ...opts, headers: withBearer(opts.headers) }, handler);
  }
  return dispatch(opts, handler);
};

setGlobalDispatcher(new Agent().compose(addBearer));
