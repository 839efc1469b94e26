import { connections, log } from '../../lib/host/lambda';
import { createDisconnectHandler } from './create';

export const handler = createDisconnectHandler({ connections, log });
