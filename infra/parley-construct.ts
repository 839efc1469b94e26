import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketAwsIntegration, WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { TURN_EVENT_TEMPLATE } from '../lib/host/events';

/** Repository root (infra/..): the esbuild project root and the home of package-lock.json. */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Where `npm run build:audio` (and `npm start`) render the audio cache. */
export const DEFAULT_AUDIO_CACHE_DIR = path.join(REPO_ROOT, 'build', 'audio');

/** The folder, inside the turn function's code, that the audio cache is copied to (`PARLEY_AUDIO_CACHE_DIR`). */
export const LAMBDA_AUDIO_CACHE_DIR = 'audio';

/** Default lifetime of a session's items (DynamoDB TTL on `expiresAt`). */
export const DEFAULT_SESSION_TTL_HOURS = 24 * 30;

/**
 * How long one turn may run. The `$default` route invokes the turn function asynchronously, so API
 * Gateway's 29 s integration timeout does not apply: this does. A turn's own bounds sit inside it:
 * the LLM gets `PARLEY_LLM_BUDGET_MS` (20 s by default, retries and tool rounds included), each
 * webhook its `timeout_ms` per attempt, and a turn still running after 4 minutes stops itself and
 * commits (lib/session/turn-lease.ts `turnMs`): the fifth minute is for that stop and the commit.
 */
export const TURN_TIMEOUT = Duration.minutes(5);

/**
 * Lambda's retries of a failed asynchronous turn invocation (a crash, a timeout, running out of memory,
 * an error at init): AWS's default of two, kept because a retried turn is safe. It carries the
 * client's turnId, so a turn that did commit re-sends its stored outcome instead of running again.
 */
export const TURN_RETRY_ATTEMPTS = 2;

/**
 * How old a turn event may get, throttled or waiting for a retry, before Lambda drops it instead of
 * running it. Ten minutes is API Gateway's idle timeout: a turn the client has waited that long for
 * is no answer any more. Retries come one and then two minutes after a failure, so both fit unless
 * the attempts before them ran to the turn timeout.
 */
export const TURN_MAX_EVENT_AGE = Duration.minutes(10);


export interface ParleyProps {
  /**
   * API keys clients must present, in the query string at `$connect` or in
   * `hello.auth.apiKey`. Passed to the connect and turn functions (the two that
   * authenticate) as the environment variable `PARLEY_API_KEYS` (comma-separated).
   *
   * Environment variables are visible in plain text to anyone who can read the
   * function configuration and they end up in the synthesized template. This is
   * meant for development and demos; production should keep the keys in AWS
   * Secrets Manager (or SSM SecureString) and have the function read them at
   * cold start instead.
   *
   * @default - no keys: the variable is not set
   */
  readonly apiKeys?: string[];
  /** @default 'prod' */
  readonly stageName?: string;
  /**
   * Hours a session lives after its last write (the handlers stamp `expiresAt`).
   * Passed as `PARLEY_SESSION_TTL_HOURS`.
   * @default 720 (30 days)
   */
  readonly sessionTtlHours?: number;
  /**
   * Base URL that relative webhook URLs of the dialogue map resolve against (`/orders` ->
   * `https://api.example.com/orders`). Passed to the turn function as `PARLEY_ACTIONS_BASE_URL`.
   * @default - relative webhook URLs fail with the map's action_failed message
   */
  readonly actionsBaseUrl?: string;
  /**
   * The LLM (any OpenAI-compatible server). The key is read at run time from Secrets Manager, never
   * put in the template; the turn function may read that one secret and nothing else.
   * @default - no LLM: off-script input gets the dialogue map's fallback
   */
  readonly openAi?: {
    readonly apiKeySecret: secretsmanager.ISecret;
    readonly baseUrl?: string;
    readonly model?: string;
  };
  /**
   * The audio cache to ship with the turn function (lib/speech/audio-cache.ts): a folder holding a
   * `manifest.json`, copied into the function's code as `audio/` after bundling. The function finds
   * it through `PARLEY_AUDIO_CACHE_DIR=audio`, relative to `LAMBDA_TASK_ROOT`. Nothing is rendered at
   * synth: run `PARLEY_TTS=polly npm run build:audio` before `cdk deploy` to ship Polly audio (a
   * cache rendered by eSpeak is shipped too, but never hits there: the voice is part of every key).
   * `false` ships none.
   * @default build/audio of the repository, when it holds a manifest
   */
  readonly audioCacheDir?: string | false;
  /**
   * Speech output: `polly` lets the turn function call Polly's SynthesizeSpeech (audio sessions
   * are spoken); `off` makes every session text only and grants nothing.
   * @default 'polly'
   */
  readonly speech?: 'polly' | 'off';
  /**
   * Removal policy of the table and the log groups.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Retention of the functions' log groups.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Parley on AWS: one DynamoDB table, a WebSocket API with `$connect`,
 * `$disconnect` and `$default` routes, and the three Lambda functions behind
 * them, each granted only what it uses on this table and this stage.
 */
export class Parley extends Construct {
  readonly table: dynamodb.Table;
  readonly webSocketApi: apigwv2.WebSocketApi;
  readonly stage: apigwv2.WebSocketStage;
  readonly connectFunction: nodejs.NodejsFunction;
  readonly disconnectFunction: nodejs.NodejsFunction;
  readonly turnFunction: nodejs.NodejsFunction;
  /** The role API Gateway assumes to invoke the turn function, and nothing else. */
  readonly turnInvokeRole: iam.Role;

  constructor(scope: Construct, id: string, props: ParleyProps = {}) {
    super(scope, id);

    const stageName = props.stageName ?? 'prod';
    const sessionTtlHours = props.sessionTtlHours ?? DEFAULT_SESSION_TTL_HOURS;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    if (!Number.isFinite(sessionTtlHours) || sessionTtlHours <= 0) {
      throw new Error(`Parley: sessionTtlHours must be a positive number, got ${sessionTtlHours}`);
    }
    if (props.apiKeys?.some((key) => key.length === 0 || key.includes(','))) {
      throw new Error('Parley: apiKeys must be non-empty and must not contain commas');
    }

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy,
    });

    const environment: Record<string, string> = {
      PARLEY_TABLE: this.table.tableName,
      PARLEY_SESSION_TTL_HOURS: String(sessionTtlHours),
      POWERTOOLS_SERVICE_NAME: 'parley',
      NODE_OPTIONS: '--enable-source-maps',
    };
    // $connect checks a key in the query string, `hello` one sent in the message: only those two see the keys.
    const authEnvironment: Record<string, string> =
      props.apiKeys === undefined ? environment : { ...environment, PARLEY_API_KEYS: props.apiKeys.join(',') };

    const audioCacheDir = props.audioCacheDir === false ? undefined : path.resolve(props.audioCacheDir ?? DEFAULT_AUDIO_CACHE_DIR);
    const shipAudio = audioCacheDir !== undefined && existsSync(path.join(audioCacheDir, 'manifest.json'));

    const fn = (
      name: string,
      memorySize: number,
      timeout: Duration,
      env: Record<string, string> = environment,
      extra: { afterBundling?: (inputDir: string, outputDir: string) => string[] } = {},
    ): nodejs.NodejsFunction => {
      const logGroup = new logs.LogGroup(this, `${name}Logs`, { retention: logRetention, removalPolicy });
      // An explicit role instead of the default AWSLambdaBasicExecutionRole
      // managed policy, whose logs actions apply to Resource "*": this role may
      // write to its own log group only.
      const role = new iam.Role(this, `${name}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Parley ${name.toLowerCase()} function`,
      });
      logGroup.grants.write(role);
      return new nodejs.NodejsFunction(this, name, {
        role,
        entry: path.join(REPO_ROOT, 'functions', name.toLowerCase(), 'handler.ts'),
        handler: 'handler',
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize,
        timeout,
        environment: env,
        logGroup,
        projectRoot: REPO_ROOT,
        depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
        bundling: {
          format: nodejs.OutputFormat.ESM,
          target: 'node22',
          minify: true,
          sourceMap: true,
          mainFields: ['module', 'main'],
          // The AWS SDK is bundled in although the runtime ships one: its hundreds of ESM files cost
          // ~60 ms more to import than one bundle (bench: cold import), and the version is pinned.
          externalModules: [],
          // CommonJS dependencies call require(); ESM output has none, so define it.
          banner:
            "import { createRequire as __parleyCreateRequire } from 'node:module'; const require = __parleyCreateRequire(import.meta.url);",
          forceDockerBundling: false,
          ...(extra.afterBundling
            ? { commandHooks: { beforeBundling: () => [], beforeInstall: () => [], afterBundling: extra.afterBundling } }
            : {}),
        },
      });
    };

    this.connectFunction = fn('Connect', 128, Duration.seconds(10), authEnvironment);
    this.disconnectFunction = fn('Disconnect', 128, Duration.seconds(10));
    // Turns may run past API Gateway's 29 s integration timeout: the turn is invoked asynchronously
    // (below) and streams through @connections.
    this.turnFunction = fn(
      'Turn',
      256,
      TURN_TIMEOUT,
      {
        ...authEnvironment,
        ...(props.actionsBaseUrl === undefined ? {} : { PARLEY_ACTIONS_BASE_URL: props.actionsBaseUrl }),
        ...(props.openAi?.apiKeySecret ? { OPENAI_API_KEY_SECRET: props.openAi.apiKeySecret.secretArn } : {}),
        ...(props.openAi?.baseUrl ? { OPENAI_BASE_URL: props.openAi.baseUrl } : {}),
        ...(props.openAi?.model ? { OPENAI_MODEL: props.openAi.model } : {}),
        // Relative to LAMBDA_TASK_ROOT (lib/speech/audio-cache.ts resolveAudioCacheDir); a missing folder is an empty cache.
        PARLEY_AUDIO_CACHE_DIR: LAMBDA_AUDIO_CACHE_DIR,
        PARLEY_TTS: props.speech ?? 'polly',
      },
      shipAudio ? { afterBundling: (inputDir, outputDir) => [copyAudioCache(audioCacheDir!, inputDir, outputDir)] } : {},
    );
    props.openAi?.apiKeySecret.grantRead(this.turnFunction);
    // No on-failure destination: the failed event holds the user's message, and a queue of them would
    // keep conversation text outside the session's TTL. A dropped turn shows in the function's log and
    // in Lambda's AsyncEventsDropped metric.
    this.turnFunction.configureAsyncInvoke({ retryAttempts: TURN_RETRY_ATTEMPTS, maxEventAge: TURN_MAX_EVENT_AGE });

    // $default is an AWS integration calling Lambda's Invoke API with InvocationType Event, as this
    // role, which may invoke the turn function only: API Gateway acknowledges the message as soon as
    // Lambda has queued it, and the turn runs free of the 29 s integration timeout. The request
    // template builds the event the turn handler reads (lib/host/events.ts).
    this.turnInvokeRole = new iam.Role(this, 'TurnInvokeRole', {
      assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
      description: 'Parley: API Gateway invokes the turn function asynchronously ($default)',
    });
    // The unqualified ARN only ($LATEST): no `:*`, so no version or alias.
    this.turnInvokeRole.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.turnFunction.functionArn] }));

    this.webSocketApi = new apigwv2.WebSocketApi(this, 'WebSocketApi', {
      routeSelectionExpression: '$request.body.type',
      connectRouteOptions: {
        integration: new WebSocketLambdaIntegration('ConnectIntegration', this.connectFunction),
      },
      disconnectRouteOptions: {
        integration: new WebSocketLambdaIntegration('DisconnectIntegration', this.disconnectFunction),
      },
      defaultRouteOptions: {
        integration: new WebSocketAwsIntegration('TurnIntegration', {
          integrationUri: `arn:${Aws.PARTITION}:apigateway:${Aws.REGION}:lambda:path/2015-03-31/functions/${this.turnFunction.functionArn}/invocations`,
          integrationMethod: apigwv2.HttpMethod.POST,
          credentialsRole: this.turnInvokeRole,
          requestParameters: { 'integration.request.header.X-Amz-Invocation-Type': "'Event'" },
          // One template, always selected: "\$default" is the literal key $default.
          templateSelectionExpression: '\\$default',
          requestTemplates: { $default: TURN_EVENT_TEMPLATE },
          passthroughBehavior: apigwv2.PassthroughBehavior.NEVER,
        }),
      },
    });

    this.stage = new apigwv2.WebSocketStage(this, 'Stage', {
      webSocketApi: this.webSocketApi,
      stageName,
      autoDeploy: true,
    });

    // Least privilege: exactly the calls each handler makes, on this table only.
    this.table.grants.actions(this.connectFunction, 'dynamodb:PutItem');
    this.table.grants.actions(this.disconnectFunction, 'dynamodb:DeleteItem');
    this.table.grants.actions(
      this.turnFunction,
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
    );
    // PostToConnection / GetConnection / DeleteConnection on this stage only.
    this.stage.grantManagementApiAccess(this.turnFunction);
    if ((props.speech ?? 'polly') === 'polly') {
      // SynthesizeSpeech has no resource of its own (only optional lexicons): Polly's permissions
      // reference lists its resource as "*". The one wildcard resource of the stack.
      this.turnFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['polly:SynthesizeSpeech'], resources: ['*'] }));
    }
  }

  /** wss://{api}.execute-api.{region}.amazonaws.com/{stage} */
  get webSocketUrl(): string {
    return this.stage.url;
  }

  /** https://{api}.execute-api.{region}.amazonaws.com/{stage}: the @connections management endpoint. */
  get callbackUrl(): string {
    return this.stage.callbackUrl;
  }
}

/**
 * The shell command that copies the audio cache into the bundle's `audio/`. A folder inside the
 * repository is addressed through `inputDir` (the project root: the repository itself when bundling
 * locally, /asset-input in a Docker bundling container), so both ways of bundling find it.
 */
function copyAudioCache(dir: string, inputDir: string, outputDir: string): string {
  const rel = path.relative(REPO_ROOT, dir);
  const inside = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  const from = inside ? path.posix.join(inputDir.split(path.sep).join('/'), ...rel.split(path.sep)) : dir;
  const to = path.posix.join(outputDir.split(path.sep).join('/'), LAMBDA_AUDIO_CACHE_DIR);
  const quote = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;
  return `mkdir -p ${quote(to)} && cp -R ${quote(from)}/. ${quote(to)}/`;
}
