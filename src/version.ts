/**
 * The release version, taken from package.json at build time (bundled into the binary).
 * Tested by tests/integration/main.test.ts (`docxy --version`).
 */
import { version } from "../package.json";

export const VERSION: string = version;
