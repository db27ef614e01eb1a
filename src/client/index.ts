// The client modules: MGC (config), MDC, OSC, LOV. Each engineer appends its module's export line.
export { Mgc, type MgcOptions, type ConfigChange } from './mgc.js';
