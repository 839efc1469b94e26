import { auth, clock, connections, log } from '../../lib/host/lambda';
import { createConnectHandler } from './create';

export const handler = createConnectHandler({ connections, auth, clock, log });
