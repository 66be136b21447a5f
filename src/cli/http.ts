// The CLI's HTTP requests: the one-request helper of src/platform/http-request.ts.
export { request, type HttpAnswer, type TlsOptions } from "../platform/http-request.js";
