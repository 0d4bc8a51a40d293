/**
 * The one error class of the weight-format readers and writers. Every problem with a
 * file is reported as `<file>: tensor "<name>": <problem>` (or `<file>: <problem>` when
 * no single tensor is at fault), so a bad checkpoint is fixed from the message alone.
 */
export class FormatError extends Error {
  readonly file: string;
  readonly tensor?: string;
  readonly problem: string;

  constructor(file: string, problem: string, tensor?: string) {
    super(tensor === undefined ? `${file}: ${problem}` : `${file}: tensor "${tensor}": ${problem}`);
    this.name = 'FormatError';
    this.file = file;
    this.problem = problem;
    if (tensor !== undefined) this.tensor = tensor;
  }
}
