/**
 * The OCI error catalogue: every failure the registry reports is one of these codes,
 * each defined once with its HTTP status (OCI distribution-spec v1.1, "Error Codes").
 * The core throws {@link RegistryError}; the HTTP layer renders it in one place as
 * `{"errors":[{"code","message","detail"}]}`.
 */

/**
 * Error codes of the distribution spec (code-1 … code-14): "the code field MUST be one of" these.
 * Where the spec names none, the closest is used with the status HTTP asks for: 416 chunks out of
 * order are BLOB_UPLOAD_INVALID, an unsatisfiable read range SIZE_INVALID (416), bad listing
 * parameters UNSUPPORTED (400), a bad tag in a manifest URL MANIFEST_INVALID.
 */
export const ErrorCodes = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  /** Not a client error: something on the registry's side failed; details are logged, never sent. */
  INTERNAL: { status: 500, message: 'internal server error' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/**
 * A failure with an OCI error code. `status` defaults to the code's status but may be
 * overridden where the spec asks for another (413 for an oversized manifest, 416 for a
 * chunk out of order, 404 for an unknown route). `headers` are added to the response
 * (e.g. `Range` and `Location` on a 416).
 */
export class RegistryError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    status?: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(message ?? ErrorCodes[code].message);
    this.status = status ?? ErrorCodes[code].status;
  }
}

/** Shorthand used by the core: `throw fail('BLOB_UNKNOWN', …)`. */
export function fail(
  code: ErrorCode,
  message?: string,
  detail?: unknown,
  options: { status?: number; headers?: Record<string, string> } = {},
): RegistryError {
  return new RegistryError(code, message, detail, options.status, options.headers);
}
