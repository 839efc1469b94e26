#!/usr/bin/env node
// `npx parley …`: the CLI is TypeScript, run through tsx like the rest of the repo's tools.
import { register } from 'tsx/esm/api';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main, processIo } = await import('../cli/parley.ts');
process.exitCode = await main(process.argv.slice(2), processIo());
