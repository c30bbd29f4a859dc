/** The release version, taken from package.json at build time (bundled into the binary). */
import { version } from "../package.json";

export const VERSION: string = version;
