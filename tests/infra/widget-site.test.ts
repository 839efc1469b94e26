import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { CfnResource } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ParleyStack, type ParleyStackProps } from '../../infra/parley-stack.js';
import { WIDGET_MAX_AGE, WIDGET_NOT_BUNDLED, WidgetSite } from '../../infra/widget-site.js';
import { TRANSCRIBE_FILE, WIDGET_FILE } from '../../web/build.js';

/** CloudFormation template JSON. */
type Json = any;

const WIDGET_ENTRY = fileURLToPath(new URL('../../web/widget/index.ts', import.meta.url));

/** What the fake widget publishes: the tests below look for it in the uploaded files. */
const FAKE_SCRIPT = 'customElements.define("parley-chat", class extends HTMLElement {}); // fake widget for tests\n';

/**
 * One synth per stack shape, all without bundling (`aws:cdk:bundling-stacks: []`, as the props tests
 * of stack.test.ts do): the three functions get a dummy asset instead of esbuild, and the widget
 * site its placeholder unless given a script. The synth's asset folders stay in `app.outdir`.
 */
function synth(props: ParleyStackProps): { app: App; stack: ParleyStack; template: Template } {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new ParleyStack(app, 'WidgetTestStack', props);
  return { app, stack, template: Template.fromStack(stack) };
}

function logicalId(construct: IConstruct): string {
  return Stack.of(construct).getLogicalId((construct.node.defaultChild ?? construct) as CfnResource);
}

const onlyResource = (template: Template, type: string): Json => {
  const found = Object.values(template.findResources(type));
  expect(found).toHaveLength(1);
  return found[0];
};

interface DeployedSource {
  /** File name -> content, as staged for upload. */
  files: Record<string, string>;
  /** Deploy-time substitutions: marker -> CloudFormation value. */
  markers: Record<string, Json>;
}

/** The sources of the one Custom::CDKBucketDeployment, read back from the synth's staged assets. */
function deployedSources(app: App, template: Template): DeployedSource[] {
  const props = onlyResource(template, 'Custom::CDKBucketDeployment').Properties;
  return (props.SourceObjectKeys as string[]).map((key, i) => {
    const dir = path.join(app.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    const files = Object.fromEntries(readdirSync(dir).map((name) => [name, readFileSync(path.join(dir, name), 'utf8')]));
    return { files, markers: props.SourceMarkers?.[i] ?? {} };
  });
}

/** A file's content with each marker written as the CloudFormation value it becomes (`${Ref}` for a Ref). */
function rendered(source: DeployedSource, name: string): string {
  let text = source.files[name]!;
  for (const [marker, value] of Object.entries(source.markers)) {
    text = text.split(marker).join(value.Ref ? `\${${value.Ref}}` : JSON.stringify(value));
  }
  return text;
}

describe('widget off (the default)', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synth({}));
  });

  it('adds no bucket, distribution, bucket deployment or WidgetUrl output', () => {
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('AWS::CloudFront::Distribution', 0);
    template.resourceCountIs('Custom::CDKBucketDeployment', 0);
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual(['CallbackUrl', 'TableName', 'WebSocketUrl']);
  });
});

describe('widget on', () => {
  let app: App;
  let stack: ParleyStack;
  let template: Template;
  let ids: { bucket: string; distribution: string; api: string };
  beforeAll(() => {
    ({ app, stack, template } = synth({ parley: { widget: { script: FAKE_SCRIPT } } }));
    const site = stack.parley.widgetSite!;
    ids = { bucket: logicalId(site.bucket), distribution: logicalId(site.distribution), api: logicalId(stack.parley.webSocketApi) };
  });

  it('keeps its files in a private bucket: all public access blocked, object ACLs off, requests without TLS denied', () => {
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    });
    const policy = onlyResource(template, 'AWS::S3::BucketPolicy').Properties;
    expect(policy.Bucket).toEqual({ Ref: ids.bucket });
    expect(policy.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('lets only this distribution read the bucket (OAC: CloudFront service principal, SourceArn of the distribution)', () => {
    const statements: Json[] = onlyResource(template, 'AWS::S3::BucketPolicy').Properties.PolicyDocument.Statement;
    const allows = statements.filter((s) => s.Effect === 'Allow');
    expect(allows).toHaveLength(1);
    expect(allows[0]).toMatchObject({ Action: 's3:GetObject', Principal: { Service: 'cloudfront.amazonaws.com' } });
    expect(JSON.stringify(allows[0].Condition.StringEquals['AWS:SourceArn'])).toContain(`{"Ref":"${ids.distribution}"}`);
  });

  it('serves the bucket through CloudFront with Origin Access Control, HTTPS only (redirect), index.html at the root', () => {
    template.resourceCountIs('AWS::CloudFront::Distribution', 1);
    template.resourceCountIs('AWS::CloudFront::CloudFrontOriginAccessIdentity', 0);
    template.hasResourceProperties('AWS::CloudFront::OriginAccessControl', {
      OriginAccessControlConfig: { OriginAccessControlOriginType: 's3', SigningBehavior: 'always', SigningProtocol: 'sigv4' },
    });
    const oac = Object.keys(template.findResources('AWS::CloudFront::OriginAccessControl'))[0]!;
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: {
        DefaultRootObject: 'index.html',
        DefaultCacheBehavior: Match.objectLike({ ViewerProtocolPolicy: 'redirect-to-https', AllowedMethods: ['GET', 'HEAD'] }),
        Origins: [
          Match.objectLike({
            DomainName: { 'Fn::GetAtt': [ids.bucket, 'RegionalDomainName'] },
            OriginAccessControlId: { 'Fn::GetAtt': [oac, 'Id'] },
            S3OriginConfig: { OriginAccessIdentity: '' },
          }),
        ],
      },
    });
  });

  it('deploys parley-chat.js and index.html into the bucket, then invalidates the whole distribution', () => {
    const deployment = onlyResource(template, 'Custom::CDKBucketDeployment').Properties;
    expect(deployment).toMatchObject({
      DestinationBucketName: { Ref: ids.bucket },
      DistributionId: { Ref: ids.distribution },
      DistributionPaths: ['/*'],
      Prune: true,
      SystemMetadata: { 'cache-control': `public, max-age=${WIDGET_MAX_AGE.toSeconds()}` },
    });
    const sources = deployedSources(app, template);
    expect(sources.map((s) => Object.keys(s.files))).toEqual([[WIDGET_FILE], [TRANSCRIBE_FILE], ['index.html']]);
    expect(sources[0]!.files[WIDGET_FILE]).toBe(FAKE_SCRIPT);
    expect(sources[0]!.markers).toEqual({});
  });

  // Needs web/index.html to hold a <parley-chat> tag: demoPage() puts the endpoint there.
  it("gives the demo page's <parley-chat> this stage's wss:// URL, substituted at deploy time (SourceMarkers)", () => {
    const page = deployedSources(app, template)[2]!;
    expect(page.files['index.html']).toMatch(/<parley-chat endpoint="wss:\/\/<<marker:0xbaba:\d+>>/);
    expect(rendered(page, 'index.html')).toContain(
      `<parley-chat endpoint="wss://\${${ids.api}}.execute-api.\${AWS::Region}.\${AWS::URLSuffix}/prod"`,
    );
  });

  it('outputs WidgetUrl: https:// and the distribution domain', () => {
    template.hasOutput('WidgetUrl', {
      Value: { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [ids.distribution, 'DomainName'] }]] },
    });
  });

  it('keeps the bucket by default (the construct removalPolicy, RETAIN), so objects are not auto-deleted', () => {
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
  });

  it('adds one Lambda function, the CDK bucket deployment (Python), logging to its own group as its own role, no managed policy', () => {
    const functions = template.findResources('AWS::Lambda::Function');
    const extra = Object.entries(functions).filter(([, fn]: [string, Json]) => !fn.Properties.Runtime.startsWith('nodejs'));
    expect(extra).toHaveLength(1);
    const [, fn] = extra[0] as [string, Json];
    expect(fn.Properties.Runtime).toMatch(/^python3/);
    expect(fn.Properties.LoggingConfig.LogGroup).toEqual({ Ref: logicalId(stack.parley.widgetSite!.node.findChild('DeploymentLogs')) });
    const roleId = fn.Properties.Role['Fn::GetAtt'][0];
    expect(template.toJSON().Resources[roleId].Properties.ManagedPolicyArns).toBeUndefined();
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });
});

describe('widget on, RemovalPolicy.DESTROY, synthesized without bundling', () => {
  let app: App;
  let template: Template;
  beforeAll(() => {
    ({ app, template } = synth({ parley: { widget: true, removalPolicy: RemovalPolicy.DESTROY } }));
  });

  it('deletes the bucket with the stack and empties it first (autoDeleteObjects)', () => {
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 1);
  });

  it('publishes a placeholder instead of bundling the widget, as CDK does for Lambda code', () => {
    expect(deployedSources(app, template)[0]!.files[WIDGET_FILE]).toBe(WIDGET_NOT_BUNDLED);
  });
});

// Really bundles web/widget/index.ts with esbuild (web/build.ts bundleSync): fails while that entry is missing.
describe('the widget bundled at synth (needs web/widget/index.ts)', () => {
  it('publishes the esbuild bundle of web/widget as parley-chat.js', () => {
    expect(existsSync(WIDGET_ENTRY), `${WIDGET_ENTRY} is missing`).toBe(true);
    const app = new App();
    const stack = new Stack(app, 'WidgetBundleStack');
    new WidgetSite(stack, 'Widget', { endpoint: 'wss://chat.example.com/prod' });
    const template = Template.fromStack(stack);
    const script = deployedSources(app, template)[0]!.files[WIDGET_FILE]!;
    expect(script).not.toBe(WIDGET_NOT_BUNDLED);
    expect(script).toContain('parley-chat');
    // The live-transcription bundle the widget loads on demand sits next to it: the AWS SDK's Transcribe client.
    expect(deployedSources(app, template)[1]!.files[TRANSCRIBE_FILE]).toContain('StartStreamTranscription');
    expect(deployedSources(app, template)[2]!.files['index.html']).toContain('endpoint="wss://chat.example.com/prod"');
  });
});
