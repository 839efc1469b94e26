import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { bundleSync, demoPage, TRANSCRIBE_FILE, WIDGET_FILE, type BundleFile } from '../web/build.js';

/** The demo page's object key, also the distribution's default root object. */
export const WIDGET_PAGE = 'index.html';

/** Browsers and CloudFront keep both files this long; a deployment also invalidates the distribution. */
export const WIDGET_MAX_AGE = Duration.minutes(5);

/** Published when the stack is synthesized without bundling (`cdk ls`, `cdk destroy`, tests that skip bundling). */
const notBundled = (file: BundleFile) => `/* ${file}: not bundled (this synth skipped bundling) */\n`;
export const WIDGET_NOT_BUNDLED = notBundled(WIDGET_FILE);

export interface WidgetSiteProps {
  /** The WebSocket URL the demo page's widget connects to: the stage's `wss://` URL (a deploy-time token is fine). */
  readonly endpoint: string;
  /**
   * The widget script to publish as `parley-chat.js`.
   * @default the repository's widget (web/widget), bundled at synth by web/build.ts, unless the synth skips bundling
   */
  readonly script?: string | Uint8Array;
  /**
   * Removal policy of the bucket and the deployment function's log group. With DESTROY the bucket is
   * emptied on deletion (autoDeleteObjects).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The chat widget as a static site: a private bucket holding `parley-chat.js` and the demo page
 * `index.html`, served by a CloudFront distribution that alone may read it (Origin Access Control),
 * HTTPS only. The demo page's `<parley-chat>` gets `endpoint` at deploy time.
 */
export class WidgetSite extends Construct {
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  readonly deployment: s3deploy.BucketDeployment;

  constructor(scope: Construct, id: string, props: WidgetSiteProps) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'Parley chat widget',
      defaultRootObject: WIDGET_PAGE,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        compress: true,
      },
    });

    // The deployment function (a CDK singleton) logs to a group of ours, kept like the others, and
    // runs as a role that may write there instead of the AWSLambdaBasicExecutionRole managed policy.
    const logGroup = new logs.LogGroup(this, 'DeploymentLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy,
    });
    const role = new iam.Role(this, 'DeploymentRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Parley: uploads the chat widget to its bucket and invalidates the distribution',
    });
    logGroup.grants.write(role);

    this.deployment = new s3deploy.BucketDeployment(this, 'Deployment', {
      destinationBucket: this.bucket,
      sources: [
        s3deploy.Source.data(WIDGET_FILE, scriptText(props.script ?? defaultScript(this, WIDGET_FILE))),
        // Live transcription, which the widget loads from next to itself when a session streams to Amazon Transcribe.
        s3deploy.Source.data(TRANSCRIBE_FILE, scriptText(defaultScript(this, TRANSCRIBE_FILE))),
        // demoPage() puts the token's placeholder in; the deployment writes the real URL (SourceMarkers).
        s3deploy.Source.data(WIDGET_PAGE, demoPage(props.endpoint)),
      ],
      cacheControl: [s3deploy.CacheControl.setPublic(), s3deploy.CacheControl.maxAge(WIDGET_MAX_AGE)],
      distribution: this.distribution,
      distributionPaths: ['/*'],
      role,
      logGroup,
    });
  }

  /** https://{distribution}.cloudfront.net: the demo page; the widget is `${url}/parley-chat.js`. */
  get url(): string {
    return `https://${this.distribution.distributionDomainName}`;
  }
}

/** The bundled script, or a placeholder when this synth skips bundling (as CDK does for Lambda assets). */
function defaultScript(scope: Construct, file: BundleFile): Uint8Array | string {
  return Stack.of(scope).bundlingRequired ? bundleSync(file).js : notBundled(file);
}

/** Source.data takes text: esbuild's output is ASCII (non-ASCII characters escaped), so this is lossless. */
function scriptText(script: string | Uint8Array): string {
  return typeof script === 'string' ? script : new TextDecoder('utf-8', { fatal: true }).decode(script);
}
