/**
 * The two pieces of `@aws-sdk/client-sts` Transcribe access uses, loaded on demand through this
 * module: a dynamic import of the package itself would bundle every STS command (about 11 KB more
 * in the turn function), where named imports here let esbuild keep only these.
 */
export { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
