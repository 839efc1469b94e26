import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { Parley, type ParleyProps } from './parley-construct.js';

export interface ParleyStackProps extends StackProps {
  /** Passed through to the `Parley` construct. */
  readonly parley?: ParleyProps;
  /** Name of an existing Secrets Manager secret holding the OpenAI key (turns the LLM on). */
  readonly openAiSecretName?: string;
}

/** Parley as a deployable stack: the construct plus the outputs clients need. */
export class ParleyStack extends Stack {
  readonly parley: Parley;

  constructor(scope: Construct, id: string, props: ParleyStackProps = {}) {
    super(scope, id, props);

    const openAi = props.openAiSecretName
      ? { ...props.parley?.openAi, apiKeySecret: secretsmanager.Secret.fromSecretNameV2(this, 'OpenAiKey', props.openAiSecretName) }
      : props.parley?.openAi;
    this.parley = new Parley(this, 'Parley', { ...props.parley, ...(openAi ? { openAi } : {}) });

    new CfnOutput(this, 'WebSocketUrl', {
      description: 'WebSocket endpoint clients connect to (wss://...)',
      value: this.parley.webSocketUrl,
    });
    new CfnOutput(this, 'CallbackUrl', {
      description: 'API Gateway @connections management endpoint (https://...)',
      value: this.parley.callbackUrl,
    });
    new CfnOutput(this, 'TableName', {
      description: 'DynamoDB table holding connections, sessions and turn records',
      value: this.parley.table.tableName,
    });
    if (this.parley.widgetUrl !== undefined) {
      new CfnOutput(this, 'WidgetUrl', {
        description: 'The chat widget: its demo page (https://...), and /parley-chat.js to embed',
        value: this.parley.widgetUrl,
      });
    }
  }
}
