/** The error type lives in the contracts layer (schemas/errors.ts); this path stays for its importers. */
export * from "../schemas/errors.ts";
