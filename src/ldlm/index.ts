// The lock manager (LDLM): lock modes and types, resource names, the policies of each lock
// type, the server namespace, the client lock cache and Lustre's wire structures.
export * from './modes.js';
export * from './errors.js';
export * from './resource.js';
export * from './types.js';
export * from './plain.js';
export * from './extent.js';
export * from './inodebits.js';
export * from './flock.js';
export * from './namespace.js';
export { checkRequest } from './validate.js';
export * from './wire.js';
export * from './client-cache.js';
export * from './pool.js';
// The lock manager on the network (helper ldlm-rpc): the client's callback service and lock
// requests, the server's enqueue/cancel handlers and callbacks.
export * from './callbacks.js';
export * from './client.js';
export * from './service.js';
export * from './cancel-portal.js';
export * from './debug.js';
