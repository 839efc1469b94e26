import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AUDIO_CACHE_DIR, Parley } from '../../infra/parley-construct.js';
import { TURN_EVENT_TEMPLATE } from '../../lib/host/events.js';
import { ParleyStack } from '../../infra/parley-stack.js';

/** CloudFormation template JSON. */
type Json = any;

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: Json;
}

const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

const TURN_DYNAMODB_ACTIONS = [
  'dynamodb:DeleteItem',
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:Query',
  'dynamodb:UpdateItem',
];

// One synthesized stack (with real esbuild bundling) for the whole file.
let app: App;
let stack: ParleyStack;
let template: Template;
let ids: {
  table: string;
  api: string;
  connect: string;
  disconnect: string;
  turn: string;
  turnInvokeRole: string;
};

function logicalId(construct: IConstruct): string {
  const child = construct.node.defaultChild ?? construct;
  return Stack.of(construct).getLogicalId(child as CfnFunction);
}

/** Logical id of the IAM role a function runs as. */
function roleIdOf(functionId: string): string {
  const fn = template.toJSON().Resources[functionId];
  return fn.Properties.Role['Fn::GetAtt'][0] as string;
}

/** Every statement of every identity policy attached to the function's role. */
function statementsOf(functionId: string): Statement[] {
  const roleId = roleIdOf(functionId);
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) },
  });
  const role = template.toJSON().Resources[roleId];
  const inline: Json[] = role.Properties.Policies ?? [];
  return [
    ...Object.values(policies).flatMap((p: Json) => p.Properties.PolicyDocument.Statement as Statement[]),
    ...inline.flatMap((p) => p.PolicyDocument.Statement as Statement[]),
  ];
}

function actionsOf(statements: Statement[], prefix: string): string[] {
  return statements
    .flatMap((s) => asArray(s.Action))
    .filter((a) => a.startsWith(prefix))
    .sort();
}

const tableArn = (): Json => ({ 'Fn::GetAtt': [ids.table, 'Arn'] });

/** Flattens an Fn::Join (one level) into a readable string with ${Ref} placeholders. */
function joined(value: Json): string {
  if (typeof value === 'string') return value;
  if (!value['Fn::Join']) return JSON.stringify(value);
  const parts: Json[] = value['Fn::Join'][1];
  return parts
    .map((p) => (typeof p === 'string' ? p : p.Ref ? `\${${p.Ref}}` : JSON.stringify(p)))
    .join('');
}

beforeAll(() => {
  app = new App();
  stack = new ParleyStack(app, 'TestParleyStack');
  template = Template.fromStack(stack);
  const parley = stack.parley;
  ids = {
    table: logicalId(parley.table),
    api: logicalId(parley.webSocketApi),
    connect: logicalId(parley.connectFunction),
    disconnect: logicalId(parley.disconnectFunction),
    turn: logicalId(parley.turnFunction),
    turnInvokeRole: logicalId(parley.turnInvokeRole),
  };
});

describe('WebSocket API', () => {
  it('is one WebSocket API routing on $request.body.type', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      ProtocolType: 'WEBSOCKET',
      RouteSelectionExpression: '$request.body.type',
    });
  });

  /** The integration behind each route key. */
  const integrationsByRoute = (): Record<string, Json> => {
    const resources = template.toJSON().Resources;
    const byRoute: Record<string, Json> = {};
    for (const route of Object.values(template.findResources('AWS::ApiGatewayV2::Route')) as Json[]) {
      expect(route.Properties.ApiId).toEqual({ Ref: ids.api });
      // Target: "integrations/<integration id>"
      const [prefix, ref] = route.Properties.Target['Fn::Join'][1];
      expect(prefix).toBe('integrations/');
      const integration = resources[ref.Ref];
      expect(integration.Type).toBe('AWS::ApiGatewayV2::Integration');
      expect(integration.Properties.ApiId).toEqual({ Ref: ids.api });
      byRoute[route.Properties.RouteKey] = integration.Properties;
    }
    return byRoute;
  };

  /** The Lambda Invoke URI API Gateway calls for the function. */
  const invokeUri = (functionId: string) =>
    `arn:\${AWS::Partition}:apigateway:\${AWS::Region}:lambda:path/2015-03-31/functions/${JSON.stringify({ 'Fn::GetAtt': [functionId, 'Arn'] })}/invocations`;

  it('has exactly $connect, $disconnect and $default: connect and disconnect proxied to their Lambdas, $default to the turn function', () => {
    const integrations = integrationsByRoute();
    expect(Object.keys(integrations).sort()).toEqual(['$connect', '$default', '$disconnect']);
    expect(integrations.$connect).toMatchObject({ IntegrationType: 'AWS_PROXY' });
    expect(joined(integrations.$connect.IntegrationUri)).toBe(invokeUri(ids.connect));
    expect(integrations.$disconnect).toMatchObject({ IntegrationType: 'AWS_PROXY' });
    expect(joined(integrations.$disconnect.IntegrationUri)).toBe(invokeUri(ids.disconnect));
    expect(joined(integrations.$default.IntegrationUri)).toBe(invokeUri(ids.turn));
  });

  it('invokes the turn function asynchronously: an AWS integration calling Lambda Invoke with X-Amz-Invocation-Type Event, through the request template', () => {
    const turn = integrationsByRoute().$default;
    expect(turn).toEqual({
      ApiId: { Ref: ids.api },
      IntegrationType: 'AWS',
      IntegrationMethod: 'POST',
      IntegrationUri: turn.IntegrationUri, // checked above
      CredentialsArn: { 'Fn::GetAtt': [ids.turnInvokeRole, 'Arn'] },
      RequestParameters: { 'integration.request.header.X-Amz-Invocation-Type': "'Event'" },
      // One template, always selected (\$default is the literal key $default), never a raw passthrough.
      TemplateSelectionExpression: '\\$default',
      RequestTemplates: { $default: TURN_EVENT_TEMPLATE },
      PassthroughBehavior: 'NEVER',
    });
    // No route response: API Gateway sends the client nothing for the invocation; the turn streams.
    template.resourceCountIs('AWS::ApiGatewayV2::RouteResponse', 0);
    template.resourceCountIs('AWS::ApiGatewayV2::IntegrationResponse', 0);
  });

  it('lets API Gateway invoke the turn function as a role that may invoke it and nothing else', () => {
    const role = template.toJSON().Resources[ids.turnInvokeRole];
    expect(role.Type).toBe('AWS::IAM::Role');
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'apigateway.amazonaws.com' } },
    ]);
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.Policies).toBeUndefined();
    const policies = Object.values(template.findResources('AWS::IAM::Policy', { Properties: { Roles: Match.arrayWith([{ Ref: ids.turnInvokeRole }]) } })) as Json[];
    expect(policies.flatMap((p) => p.Properties.PolicyDocument.Statement)).toEqual([
      // The unqualified ARN: $LATEST, no version or alias (no ":*").
      { Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: { 'Fn::GetAtt': [ids.turn, 'Arn'] } },
    ]);
    // No other role may invoke a Parley function.
    const invokers = (Object.values(template.findResources('AWS::IAM::Policy')) as Json[]).filter((p) =>
      JSON.stringify(p.Properties.PolicyDocument).includes('lambda:'),
    );
    expect(invokers).toHaveLength(1);
  });

  it('lets API Gateway invoke connect and disconnect from this API only (resource policies), and the turn function through its role only', () => {
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission')) as Json[];
    expect(permissions).toHaveLength(2);
    expect(permissions.map((p) => p.Properties.FunctionName['Fn::GetAtt'][0]).sort()).toEqual([ids.connect, ids.disconnect].sort());
    for (const p of permissions) {
      expect(p.Properties.Principal).toBe('apigateway.amazonaws.com');
      expect(JSON.stringify(p.Properties.SourceArn)).toContain(`"Ref":"${ids.api}"`);
    }
  });

  it('deploys an auto-deployed "prod" stage', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      ApiId: { Ref: ids.api },
      StageName: 'prod',
      AutoDeploy: true,
    });
  });

  it('outputs the wss:// URL, the @connections callback URL and the table name', () => {
    const outputs = template.toJSON().Outputs;
    expect(joined(outputs.WebSocketUrl.Value)).toBe(
      `wss://\${${ids.api}}.execute-api.\${AWS::Region}.\${AWS::URLSuffix}/prod`,
    );
    expect(joined(outputs.CallbackUrl.Value)).toBe(
      `https://\${${ids.api}}.execute-api.\${AWS::Region}.\${AWS::URLSuffix}/prod`,
    );
    expect(outputs.TableName.Value).toEqual({ Ref: ids.table });
  });
});

describe('Lambda functions', () => {
  it('are three Node.js 22 arm64 functions', () => {
    template.resourceCountIs('AWS::Lambda::Function', 3);
    template.allResourcesProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
    });
  });

  it('size and time out each function as designed', () => {
    const props = (id: string): Json => template.toJSON().Resources[id].Properties;
    expect([props(ids.connect).MemorySize, props(ids.connect).Timeout]).toEqual([128, 10]);
    expect([props(ids.disconnect).MemorySize, props(ids.disconnect).Timeout]).toEqual([128, 10]);
    // The turn runs asynchronously, past API Gateway's 29 s: five minutes, the LLM budget (20 s) far inside.
    expect([props(ids.turn).MemorySize, props(ids.turn).Timeout]).toEqual([256, 300]);
  });

  it('retry a failed asynchronous turn twice (safe: turns are idempotent by turnId) and drop turn events older than 10 minutes; no failure destination', () => {
    const configs = Object.values(template.findResources('AWS::Lambda::EventInvokeConfig')) as Json[];
    expect(configs).toEqual([
      {
        Type: 'AWS::Lambda::EventInvokeConfig',
        Properties: {
          FunctionName: { Ref: ids.turn },
          Qualifier: '$LATEST',
          MaximumRetryAttempts: 2,
          MaximumEventAgeInSeconds: 600,
        },
      },
    ]);
  });

  it('share the table name, TTL, service name and source maps; no API keys unless given; the turn function finds its audio cache', () => {
    for (const id of [ids.connect, ids.disconnect, ids.turn]) {
      const vars = template.toJSON().Resources[id].Properties.Environment.Variables;
      expect(vars).toEqual({
        PARLEY_TABLE: { Ref: ids.table },
        PARLEY_SESSION_TTL_HOURS: '720',
        POWERTOOLS_SERVICE_NAME: 'parley',
        NODE_OPTIONS: '--enable-source-maps',
        ...(id === ids.turn
          ? { PARLEY_AUDIO_CACHE_DIR: 'audio', PARLEY_TTS: 'polly', PARLEY_RESUME_SECRET_ID: { Ref: logicalId(stack.parley.resumeSecret) } }
          : {}),
      });
    }
  });

  it('log to their own log group with a retention', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', 3);
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    const groups = [ids.connect, ids.disconnect, ids.turn].map(
      (id) => template.toJSON().Resources[id].Properties.LoggingConfig.LogGroup.Ref as string,
    );
    expect(new Set(groups).size).toBe(3);
    for (const g of groups) expect(template.toJSON().Resources[g].Type).toBe('AWS::Logs::LogGroup');
  });

  it('are bundled by esbuild as minified ESM with a require() shim and a source map', () => {
    for (const id of [ids.connect, ids.disconnect, ids.turn]) {
      const s3Key: string = template.toJSON().Resources[id].Properties.Code.S3Key;
      const assetDir = path.join(app.outdir, `asset.${s3Key.replace(/\.zip$/, '')}`);
      const code = readFileSync(path.join(assetDir, 'index.mjs'), 'utf8');
      expect(code.startsWith("import { createRequire as __parleyCreateRequire } from 'node:module';")).toBe(true);
      expect(code).toContain('const require = __parleyCreateRequire(import.meta.url);');
      expect(code).toMatch(/export\s*\{[^}]*\bas handler\b[^}]*\}/);
      expect(code).toContain('//# sourceMappingURL=index.mjs.map');
      expect(existsSync(path.join(assetDir, 'index.mjs.map'))).toBe(true);
    }
  });
});

/** The folder a bundled function's code asset was staged in. */
function assetDirOf(a: App, t: Template, functionId: string): string {
  const s3Key: string = t.toJSON().Resources[functionId].Properties.Code.S3Key;
  return path.join(a.outdir, `asset.${s3Key.replace(/\.zip$/, '')}`);
}

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('What the functions ship', () => {
  it('the turn function ships build/audio as audio/ exactly when build/audio holds a manifest; the others never', () => {
    const manifest = path.join(DEFAULT_AUDIO_CACHE_DIR, 'manifest.json');
    const turnAudio = path.join(assetDirOf(app, template, ids.turn), 'audio', 'manifest.json');
    if (existsSync(manifest)) expect(readFileSync(turnAudio, 'utf8')).toBe(readFileSync(manifest, 'utf8'));
    else expect(existsSync(turnAudio)).toBe(false);
    for (const id of [ids.connect, ids.disconnect]) expect(existsSync(path.join(assetDirOf(app, template, id), 'audio'))).toBe(false);
  });

  it('nothing GPL: no file of any function asset mentions espeak-ng (the local synthesizer stays out of Lambda bundles)', () => {
    for (const id of [ids.connect, ids.disconnect, ids.turn]) {
      const dir = assetDirOf(app, template, id);
      const files = filesUnder(dir);
      expect(files).toContain('index.mjs');
      for (const file of files) {
        const text = readFileSync(path.join(dir, file), 'latin1');
        expect(text.toLowerCase().includes('espeak-ng'), `${id}: ${file} mentions espeak-ng`).toBe(false);
      }
    }
  });

  it('copies a given audio cache folder into the turn function\'s code (real bundling)', () => {
    const audio = mkdtempSync(path.join(tmpdir(), "parley-audio it's here "));
    try {
      const key = 'a'.repeat(64);
      const manifest = `${JSON.stringify({ version: 1, entries: { [key]: { file: `${key}.pcm`, durationMs: 1, marks: [], text: 'Hi', voice: { provider: 'polly', id: 'Joanna', language: 'en' }, format: { format: 'pcm', sampleRate: 16000 } } } })}\n`;
      writeFileSync(path.join(audio, 'manifest.json'), manifest);
      writeFileSync(path.join(audio, `${key}.pcm`), new Uint8Array([1, 2, 3, 4]));
      const a = new App();
      const s = new Stack(a, 'AudioStack');
      const parley = new Parley(s, 'Parley', { audioCacheDir: audio });
      const t = Template.fromStack(s);
      const turnDir = assetDirOf(a, t, s.getLogicalId(parley.turnFunction.node.defaultChild as CfnFunction));
      expect(filesUnder(path.join(turnDir, 'audio'))).toEqual([`${key}.pcm`, 'manifest.json']);
      expect(readFileSync(path.join(turnDir, 'audio', 'manifest.json'), 'utf8')).toBe(manifest);
      expect([...readFileSync(path.join(turnDir, 'audio', `${key}.pcm`))]).toEqual([1, 2, 3, 4]);
      const connectDir = assetDirOf(a, t, s.getLogicalId(parley.connectFunction.node.defaultChild as CfnFunction));
      expect(existsSync(path.join(connectDir, 'audio'))).toBe(false);
    } finally {
      rmSync(audio, { recursive: true, force: true });
    }
  });

  it('ships no audio from a folder without a manifest', () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'parley-no-audio-'));
    try {
      writeFileSync(path.join(empty, 'stray.pcm'), 'x');
      const a = new App();
      const s = new Stack(a, 'NoAudioStack');
      const parley = new Parley(s, 'Parley', { audioCacheDir: empty });
      const t = Template.fromStack(s);
      const turnDir = assetDirOf(a, t, s.getLogicalId(parley.turnFunction.node.defaultChild as CfnFunction));
      expect(existsSync(path.join(turnDir, 'audio'))).toBe(false);
      expect(t.toJSON().Resources[s.getLogicalId(parley.turnFunction.node.defaultChild as CfnFunction)].Properties.Environment.Variables.PARLEY_AUDIO_CACHE_DIR).toBe('audio');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('DynamoDB table', () => {
  it('is one on-demand table keyed pk/sk with TTL on expiresAt, PITR and AWS-managed encryption', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      // SSEEnabled without a customer key = KMS with the AWS managed key (aws/dynamodb).
      SSESpecification: { SSEEnabled: true, KMSMasterKeyId: Match.absent() },
    });
  });

  it('is retained by default', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });
});

describe('IAM: least privilege', () => {
  it('connect may only PutItem on the table', () => {
    const statements = statementsOf(ids.connect);
    expect(actionsOf(statements, 'dynamodb:')).toEqual(['dynamodb:PutItem']);
    const dynamo = statements.filter((s) => asArray(s.Action).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo.map((s) => asArray(s.Resource))).toEqual([[tableArn()]]);
    expect(actionsOf(statements, 'execute-api:')).toEqual([]);
  });

  it('disconnect may only DeleteItem on the table', () => {
    const statements = statementsOf(ids.disconnect);
    expect(actionsOf(statements, 'dynamodb:')).toEqual(['dynamodb:DeleteItem']);
    const dynamo = statements.filter((s) => asArray(s.Action).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo.map((s) => asArray(s.Resource))).toEqual([[tableArn()]]);
    expect(actionsOf(statements, 'execute-api:')).toEqual([]);
  });

  it('turn may Get/Put/Update/Delete/Query the table and manage this stage\'s connections', () => {
    const statements = statementsOf(ids.turn);
    expect(actionsOf(statements, 'dynamodb:')).toEqual(TURN_DYNAMODB_ACTIONS);
    const dynamo = statements.filter((s) => asArray(s.Action).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo.flatMap((s) => asArray(s.Resource))).toEqual(dynamo.map(() => tableArn()));

    const manage = statements.filter((s) => asArray(s.Action).includes('execute-api:ManageConnections'));
    expect(manage).toHaveLength(1);
    expect(asArray(manage[0]!.Action)).toEqual(['execute-api:ManageConnections']);
    const resources = asArray(manage[0]!.Resource);
    expect(resources).toHaveLength(1);
    expect(joined(resources[0])).toBe(
      `arn:\${AWS::Partition}:execute-api:\${AWS::Region}:\${AWS::AccountId}:\${${ids.api}}/prod/*/@connections/*`,
    );
  });

  it('each function writes only to its own log group', () => {
    for (const id of [ids.connect, ids.disconnect, ids.turn]) {
      const logGroup = template.toJSON().Resources[id].Properties.LoggingConfig.LogGroup.Ref as string;
      const statements = statementsOf(id).filter((s) => asArray(s.Action).some((a) => a.startsWith('logs:')));
      expect(actionsOf(statements, 'logs:')).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
      expect(statements.flatMap((s) => asArray(s.Resource))).toEqual([{ 'Fn::GetAtt': [logGroup, 'Arn'] }]);
    }
  });

  it('turn may call Polly SynthesizeSpeech and nothing else of Polly; connect and disconnect may not', () => {
    expect(actionsOf(statementsOf(ids.turn), 'polly:')).toEqual(['polly:SynthesizeSpeech']);
    expect(actionsOf(statementsOf(ids.connect), 'polly:')).toEqual([]);
    expect(actionsOf(statementsOf(ids.disconnect), 'polly:')).toEqual([]);
    expect(template.toJSON().Resources[ids.turn].Properties.Environment.Variables).toMatchObject({ PARLEY_TTS: 'polly', PARLEY_AUDIO_CACHE_DIR: 'audio' });
  });

  it('no statement grants dynamodb:* or *, or applies to Resource "*" (but Polly SynthesizeSpeech, which has no resource); no managed policies', () => {
    const resources = template.toJSON().Resources as Record<string, Json>;
    const all: Statement[] = [];
    for (const r of Object.values(resources)) {
      if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
        all.push(...r.Properties.PolicyDocument.Statement);
      }
      if (r.Type === 'AWS::IAM::Role') {
        expect(r.Properties.ManagedPolicyArns).toBeUndefined();
        for (const p of r.Properties.Policies ?? []) all.push(...p.PolicyDocument.Statement);
      }
    }
    expect(all.length).toBeGreaterThanOrEqual(7);
    for (const s of all) {
      expect(s.Effect).toBe('Allow');
      for (const action of asArray(s.Action)) {
        expect(action).not.toBe('*');
        expect(action).not.toBe('dynamodb:*');
        expect(action).not.toContain('*');
      }
      for (const resource of asArray(s.Resource)) {
        if (asArray(s.Action).every((a) => a === 'polly:SynthesizeSpeech')) continue;
        expect(resource).not.toBe('*');
        // The only wildcard allowed is inside this stage's @connections ARN.
        const text = joined(resource);
        if (text.includes('*')) expect(text).toMatch(/\/prod\/\*\/@connections\/\*$/);
      }
    }
  });
});

describe('Parley props (synthesized without bundling)', () => {
  const synth = (props: ConstructorParameters<typeof Parley>[2]): { template: Template; parley: Parley } => {
    // Skip esbuild for these stacks: only the template matters here.
    const noBundlingApp = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const s = new Stack(noBundlingApp, 'PropsStack');
    const parley = new Parley(s, 'Parley', props);
    return { template: Template.fromStack(s), parley };
  };
  const envOf = (t: Template, s: Stack, fn: NodejsFunction): Json =>
    t.toJSON().Resources[s.getLogicalId(fn.node.defaultChild as CfnFunction)].Properties.Environment.Variables;

  it('passes apiKeys, comma-separated, to the two functions that authenticate (connect, turn)', () => {
    const { template: t, parley } = synth({ apiKeys: ['k1', 'k2'] });
    const s = Stack.of(parley);
    expect(envOf(t, s, parley.connectFunction).PARLEY_API_KEYS).toBe('k1,k2');
    expect(envOf(t, s, parley.disconnectFunction).PARLEY_API_KEYS).toBeUndefined();
    expect(envOf(t, s, parley.turnFunction).PARLEY_API_KEYS).toBe('k1,k2');
  });

  it('speech off: text only, and no Polly permission at all', () => {
    const { template: t, parley } = synth({ speech: 'off' });
    const s = Stack.of(parley);
    expect(envOf(t, s, parley.turnFunction).PARLEY_TTS).toBe('off');
    const statements = Object.values(t.findResources('AWS::IAM::Policy')).flatMap((p: Json) => p.Properties.PolicyDocument.Statement as Json[]);
    expect(statements.flatMap((st) => [st.Action].flat()).filter((a: string) => a.startsWith('polly:'))).toEqual([]);
  });

  it('gives the turn function read access to exactly the OpenAI key secret, never the key itself', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const s = new Stack(app, 'LlmStack');
    const secret = new secretsmanager.Secret(s, 'OpenAiKey');
    const parley = new Parley(s, 'Parley', { openAi: { apiKeySecret: secret, baseUrl: 'https://llm.example.com/v1', model: 'gpt-test' } });
    const t = Template.fromStack(s);
    const env = envOf(t, s, parley.turnFunction);
    expect(env.OPENAI_API_KEY_SECRET).toEqual({ Ref: s.getLogicalId(secret.node.defaultChild as secretsmanager.CfnSecret) });
    expect(env).toMatchObject({ OPENAI_BASE_URL: 'https://llm.example.com/v1', OPENAI_MODEL: 'gpt-test' });
    expect(env.OPENAI_API_KEY).toBeUndefined();
    const statements = Object.values(t.findResources('AWS::IAM::Policy')).flatMap((p: Json) => p.Properties.PolicyDocument.Statement as Json[]);
    const secretReads = statements.filter((st) => [st.Action].flat().includes('secretsmanager:GetSecretValue'));
    // That secret, and the resume secret the construct generates: nothing else.
    expect(secretReads).toHaveLength(2);
    expect(secretReads.map((st) => st.Resource)).toEqual(
      expect.arrayContaining([
        { Ref: s.getLogicalId(secret.node.defaultChild as secretsmanager.CfnSecret) },
        { Ref: s.getLogicalId(parley.resumeSecret.node.defaultChild as secretsmanager.CfnSecret) },
      ]),
    );
  });

  it('tracing: PARLEY_TRACING=otlp and the collector endpoint go to the turn function only; off by default', () => {
    const { template: t, parley } = synth({ tracing: { endpoint: 'http://localhost:4318', protocol: 'http/json' } });
    const s = Stack.of(parley);
    expect(envOf(t, s, parley.turnFunction)).toMatchObject({
      PARLEY_TRACING: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    });
    for (const fn of [parley.connectFunction, parley.disconnectFunction]) expect(envOf(t, s, fn).PARLEY_TRACING).toBeUndefined();
    const plain = synth({});
    expect(envOf(plain.template, Stack.of(plain.parley), plain.parley.turnFunction).PARLEY_TRACING).toBeUndefined();
    expect(() => synth({ tracing: { endpoint: 'localhost:4318' } })).toThrow(/tracing.endpoint/);
  });

  it('passes actionsBaseUrl to the turn function only', () => {
    const { template: t, parley } = synth({ actionsBaseUrl: 'https://api.example.com' });
    const s = Stack.of(parley);
    expect(envOf(t, s, parley.turnFunction).PARLEY_ACTIONS_BASE_URL).toBe('https://api.example.com');
    expect(envOf(t, s, parley.connectFunction).PARLEY_ACTIONS_BASE_URL).toBeUndefined();
  });

  it('honours stageName, sessionTtlHours, removalPolicy and logRetention', () => {
    const { template: t, parley } = synth({
      stageName: 'dev',
      sessionTtlHours: 6,
      removalPolicy: RemovalPolicy.DESTROY,
      logRetention: logs.RetentionDays.ONE_WEEK,
    });
    t.hasResourceProperties('AWS::ApiGatewayV2::Stage', { StageName: 'dev' });
    expect(envOf(t, Stack.of(parley), parley.turnFunction).PARLEY_SESSION_TTL_HOURS).toBe('6');
    t.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete' });
    t.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Delete', Properties: { RetentionInDays: 7 } });
    const grant = JSON.stringify(t.toJSON().Resources);
    expect(grant).toContain('/dev/*/@connections/*');
    expect(grant).not.toContain('/prod/');
  });

  it('rejects a non-positive TTL and API keys containing commas', () => {
    expect(() => synth({ sessionTtlHours: 0 })).toThrow(/sessionTtlHours/);
    expect(() => synth({ apiKeys: ['a,b'] })).toThrow(/apiKeys/);
  });

  /** Every statement that reads a secret, with the roles it is attached to. */
  const secretGrants = (t: Template): { resource: Json; roles: string[] }[] =>
    (Object.values(t.findResources('AWS::IAM::Policy')) as Json[]).flatMap((p) =>
      (p.Properties.PolicyDocument.Statement as Json[])
        .filter((st) => [st.Action].flat().some((a: string) => a.startsWith('secretsmanager:')))
        .map((st) => {
          expect([st.Action].flat().sort()).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
          return { resource: st.Resource, roles: (p.Properties.Roles as Json[]).map((r) => r.Ref as string) };
        }),
    );
  const roleOf = (s: Stack, fn: NodejsFunction): string => s.getLogicalId(fn.role!.node.defaultChild as CfnFunction);

  it('resume tokens: generates a secret (its value never in the template) that only the turn function may read, by ARN', () => {
    const { template: t, parley } = synth({});
    const s = Stack.of(parley);
    const secretId = s.getLogicalId(parley.resumeSecret.node.defaultChild as secretsmanager.CfnSecret);
    const secret = t.toJSON().Resources[secretId];
    expect(secret.Type).toBe('AWS::SecretsManager::Secret');
    expect(secret.Properties.GenerateSecretString).toEqual({ PasswordLength: 64, ExcludePunctuation: true });
    expect(secret.Properties.SecretString).toBeUndefined();
    expect(secret.DeletionPolicy).toBe('Retain');
    expect(envOf(t, s, parley.turnFunction).PARLEY_RESUME_SECRET_ID).toEqual({ Ref: secretId });
    expect(envOf(t, s, parley.turnFunction).PARLEY_RESUME_SECRET).toBeUndefined();
    expect(envOf(t, s, parley.connectFunction).PARLEY_RESUME_SECRET_ID).toBeUndefined();
    expect(envOf(t, s, parley.disconnectFunction).PARLEY_RESUME_SECRET_ID).toBeUndefined();
    expect(secretGrants(t)).toEqual([{ resource: { Ref: secretId }, roles: [roleOf(s, parley.turnFunction)] }]);
  });

  it('resume tokens: a given secret is used instead, and none is generated', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const s = new Stack(app, 'ResumeStack');
    const given = new secretsmanager.Secret(s, 'Given');
    const parley = new Parley(s, 'Parley', { resumeSecret: given });
    const t = Template.fromStack(s);
    t.resourceCountIs('AWS::SecretsManager::Secret', 1);
    const givenId = s.getLogicalId(given.node.defaultChild as secretsmanager.CfnSecret);
    expect(envOf(t, s, parley.turnFunction).PARLEY_RESUME_SECRET_ID).toEqual({ Ref: givenId });
    expect(secretGrants(t)).toEqual([{ resource: { Ref: givenId }, roles: [roleOf(s, parley.turnFunction)] }]);
  });

  it('JWT: the settings go to connect and turn (never disconnect), the HS256 key by its ARN, readable by those two only', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const s = new Stack(app, 'JwtStack');
    const key = new secretsmanager.Secret(s, 'JwtKey');
    const parley = new Parley(s, 'Parley', {
      jwt: { secret: key, jwksUrl: 'https://id.example.com/.well-known/jwks.json', issuer: 'https://id.example.com/', audience: 'parley' },
    });
    const t = Template.fromStack(s);
    const keyId = s.getLogicalId(key.node.defaultChild as secretsmanager.CfnSecret);
    const expected = {
      PARLEY_JWT_SECRET_ID: { Ref: keyId },
      PARLEY_JWT_JWKS_URL: 'https://id.example.com/.well-known/jwks.json',
      PARLEY_JWT_ISSUER: 'https://id.example.com/',
      PARLEY_JWT_AUDIENCE: 'parley',
    };
    expect(envOf(t, s, parley.connectFunction)).toMatchObject(expected);
    expect(envOf(t, s, parley.turnFunction)).toMatchObject(expected);
    expect(envOf(t, s, parley.connectFunction).PARLEY_JWT_SECRET).toBeUndefined();
    expect(Object.keys(envOf(t, s, parley.disconnectFunction)).filter((k) => k.startsWith('PARLEY_JWT'))).toEqual([]);
    const grants = secretGrants(t).filter((g) => JSON.stringify(g.resource) === JSON.stringify({ Ref: keyId }));
    expect(grants.flatMap((g) => g.roles).sort()).toEqual([roleOf(s, parley.connectFunction), roleOf(s, parley.turnFunction)].sort());
    expect(secretGrants(t).every((g) => !g.roles.includes(roleOf(s, parley.disconnectFunction)))).toBe(true);
  });

  it('API key hashes go to connect and turn; the keys themselves need not be in the template', () => {
    const hash = 'A'.repeat(64);
    const { template: t, parley } = synth({ apiKeyHashes: [hash, 'b'.repeat(64)] });
    const s = Stack.of(parley);
    expect(envOf(t, s, parley.connectFunction).PARLEY_API_KEY_HASHES).toBe(`${'a'.repeat(64)},${'b'.repeat(64)}`);
    expect(envOf(t, s, parley.turnFunction).PARLEY_API_KEY_HASHES).toBe(`${'a'.repeat(64)},${'b'.repeat(64)}`);
    expect(envOf(t, s, parley.disconnectFunction).PARLEY_API_KEY_HASHES).toBeUndefined();
    expect(envOf(t, s, parley.connectFunction).PARLEY_API_KEYS).toBeUndefined();
  });

  it('rejects malformed API key hashes, a JWT setting with no way to verify, and a JWKS over plain http', () => {
    expect(() => synth({ apiKeyHashes: ['not-a-hash'] })).toThrow(/apiKeyHashes/);
    expect(() => synth({ jwt: { issuer: 'https://id.example.com/' } })).toThrow(/jwt/);
    expect(() => synth({ jwt: { jwksUrl: 'http://id.example.com/jwks.json' } })).toThrow(/jwksUrl/);
  });
});

describe('voiceInput: transcribe (presigned Transcribe streaming URLs)', () => {
  const synthVoice = (props: ConstructorParameters<typeof Parley>[2]) => {
    const noBundlingApp = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const s = new Stack(noBundlingApp, 'VoiceStack');
    const parley = new Parley(s, 'Parley', props);
    return { t: Template.fromStack(s), s, parley };
  };
  const turnRoleArn = (s: Stack, parley: Parley): Json => ({ 'Fn::GetAtt': [s.getLogicalId(parley.turnFunction.role!.node.defaultChild as CfnFunction), 'Arn'] });
  const allStatements = (t: Template): Statement[] => {
    const out: Statement[] = [];
    for (const r of Object.values(t.toJSON().Resources as Record<string, Json>)) {
      if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') out.push(...r.Properties.PolicyDocument.Statement);
      if (r.Type === 'AWS::IAM::Role') for (const p of r.Properties.Policies ?? []) out.push(...p.PolicyDocument.Statement);
    }
    return out;
  };

  it('creates a role that may only StartStreamTranscriptionWebSocket, assumable by the turn function\'s role alone, which may assume exactly it', () => {
    const { t, s, parley } = synthVoice({ voiceInput: 'transcribe' });
    const roleId = s.getLogicalId(parley.transcribeRole!.node.defaultChild as CfnFunction);
    const role = t.toJSON().Resources[roleId];
    // Its permissions: one statement, one action, on "*" (Transcribe streaming has no resource type); no managed policies.
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const own = (role.Properties.Policies as Json[]).flatMap((p) => p.PolicyDocument.Statement);
    expect(own).toEqual([{ Effect: 'Allow', Action: 'transcribe:StartStreamTranscriptionWebSocket', Resource: '*' }]);
    // No separate policy is attached to it either.
    expect(t.findResources('AWS::IAM::Policy', { Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) } })).toEqual({});
    // Trust: sts:AssumeRole by the turn function's role, by ARN, and nobody else.
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { AWS: turnRoleArn(s, parley) } },
    ]);
    // The turn function: sts:AssumeRole on exactly this role; connect and disconnect: no sts at all.
    const turnId = s.getLogicalId(parley.turnFunction.node.defaultChild as CfnFunction);
    const stsStatements = Object.values(
      t.findResources('AWS::IAM::Policy', { Properties: { Roles: Match.arrayWith([{ Ref: t.toJSON().Resources[turnId].Properties.Role['Fn::GetAtt'][0] }]) } }),
    )
      .flatMap((p: Json) => p.Properties.PolicyDocument.Statement as Statement[])
      .filter((st) => asArray(st.Action).some((a) => a.startsWith('sts:')));
    expect(stsStatements).toEqual([{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: { 'Fn::GetAtt': [roleId, 'Arn'] } }]);
    // Across the whole stack: transcribe only in that role, sts only towards it.
    const statements = allStatements(t);
    expect(statements.filter((st) => asArray(st.Action).some((a) => a.startsWith('transcribe:')))).toHaveLength(1);
    expect(statements.filter((st) => asArray(st.Action).some((a) => a.startsWith('sts:')))).toHaveLength(1);
    // The turn function finds the role; the others know nothing of it.
    const env = (fn: NodejsFunction): Json => t.toJSON().Resources[s.getLogicalId(fn.node.defaultChild as CfnFunction)].Properties.Environment.Variables;
    expect(env(parley.turnFunction).PARLEY_TRANSCRIBE_ROLE_ARN).toEqual({ 'Fn::GetAtt': [roleId, 'Arn'] });
    expect(env(parley.connectFunction).PARLEY_TRANSCRIBE_ROLE_ARN).toBeUndefined();
    expect(env(parley.disconnectFunction).PARLEY_TRANSCRIBE_ROLE_ARN).toBeUndefined();
  });

  it('speechRecognizer sets the turn function\'s recognizer variables and grants nothing; a URL that is not http(s) is refused', () => {
    const { t, s, parley } = synthVoice({ speechRecognizer: { baseUrl: 'https://stt.example.com/v1', model: 'large-v3' } });
    const env = (fn: NodejsFunction): Json => t.toJSON().Resources[s.getLogicalId(fn.node.defaultChild as CfnFunction)].Properties.Environment.Variables;
    expect(env(parley.turnFunction)).toMatchObject({ PARLEY_STT_BASE_URL: 'https://stt.example.com/v1', PARLEY_STT_MODEL: 'large-v3' });
    expect(env(parley.connectFunction).PARLEY_STT_BASE_URL).toBeUndefined();
    expect(allStatements(t).flatMap((st) => asArray(st.Action)).filter((a) => a.startsWith('transcribe:') || a.startsWith('sts:'))).toEqual([]);
    expect(() => synthVoice({ speechRecognizer: { baseUrl: 'stt.example.com' } })).toThrow(/must be an http\(s\) URL/);
  });

  it('off by default (and with voiceInput: off): no such role, no transcribe or sts permission, no variable', () => {
    for (const props of [{}, { voiceInput: 'off' as const }]) {
      const { t, s, parley } = synthVoice(props);
      expect(parley.transcribeRole).toBeUndefined();
      const statements = allStatements(t);
      expect(statements.flatMap((st) => asArray(st.Action)).filter((a) => a.startsWith('transcribe:') || a.startsWith('sts:'))).toEqual([]);
      const turnEnv = t.toJSON().Resources[s.getLogicalId(parley.turnFunction.node.defaultChild as CfnFunction)].Properties.Environment.Variables;
      expect(turnEnv.PARLEY_TRANSCRIBE_ROLE_ARN).toBeUndefined();
      // Only the functions' roles and API Gateway's invoke role.
      expect(Object.keys(t.findResources('AWS::IAM::Role'))).toHaveLength(4);
    }
  });
});
