// Expected failures of a parameter request, each with a stable errno-like code (the control
// socket passes it to lctl as is) and a message naming the parameter and what is wrong.

export type ParamErrorCode = 'ENOENT' | 'EINVAL' | 'ERANGE' | 'EROFS' | 'EISDIR';

export class ParamError extends Error {
  readonly code: ParamErrorCode;

  constructor(code: ParamErrorCode, message: string) {
    super(message);
    this.name = 'ParamError';
    this.code = code;
  }
}
