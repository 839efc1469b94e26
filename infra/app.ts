import { App } from 'aws-cdk-lib';
import { ParleyStack } from './parley-stack.js';

// Environment-agnostic on purpose: no account/region lookups, so `npm run synth`
// works offline and without credentials. Deploy with the CLI's default env.
const app = new App();

// Optional: `cdk synth -c parley:apiKeys=key1,key2` (dev only; see ParleyProps.apiKeys).
const apiKeysContext: unknown = app.node.tryGetContext('parley:apiKeys');
const apiKeys =
  typeof apiKeysContext === 'string' && apiKeysContext.length > 0
    ? apiKeysContext.split(',').map((key) => key.trim()).filter((key) => key.length > 0)
    : undefined;

// Optional: `cdk deploy -c parley:openAiSecret=<secret name>` (a Secrets Manager secret holding the key).
const openAiSecret: unknown = app.node.tryGetContext('parley:openAiSecret');

// Optional: `cdk deploy -c parley:widget=true` publishes the chat widget (see ParleyProps.widget; output WidgetUrl).
const widgetContext: unknown = app.node.tryGetContext('parley:widget');
const widget = widgetContext === true || widgetContext === 'true';

// Optional voice input: `-c parley:voiceInput=transcribe` (live Amazon Transcribe in the client), and/or
// `-c parley:speechRecognizer=https://stt.example.com/v1` (your own OpenAI-compatible recognizer for uploads).
const voiceInputContext: unknown = app.node.tryGetContext('parley:voiceInput');
const isVoiceInput = (v: unknown): v is 'transcribe' | 'off' => v === 'transcribe' || v === 'off';
if (voiceInputContext !== undefined && !isVoiceInput(voiceInputContext)) {
  throw new Error(`-c parley:voiceInput must be 'transcribe' or 'off', got ${JSON.stringify(voiceInputContext)}`);
}
const recognizerContext: unknown = app.node.tryGetContext('parley:speechRecognizer');

const parley = {
  ...(apiKeys ? { apiKeys } : {}),
  ...(widget ? { widget } : {}),
  ...(isVoiceInput(voiceInputContext) ? { voiceInput: voiceInputContext } : {}),
  ...(typeof recognizerContext === 'string' && recognizerContext ? { speechRecognizer: { baseUrl: recognizerContext } } : {}),
};

new ParleyStack(app, 'ParleyStack', {
  ...(typeof openAiSecret === 'string' && openAiSecret ? { openAiSecretName: openAiSecret } : {}),
  description: 'Parley: per-turn serverless chat runner (API Gateway WebSocket, Lambda, DynamoDB)',
  parley,
});

app.synth();
