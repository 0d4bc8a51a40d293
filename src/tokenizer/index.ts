export { StreamDecoder, decodeAfter, TokenizerError, BOS_ID, EOS_ID, UNK_ID, type Tokenizer } from './tokenizer.js';
export { HfTokenizer, readHfTokenizer, asBpeTokenizer, tokenizerJsonOf, type HfTokenizerOptions, type TokenIds } from './hf.js';
export { BpeTokenizer, trainBpe, preTokenize, BYTE_OFFSET, FIRST_MERGED_ID, type Merge, type TrainBpeOptions } from './bpe.js';
export { bpeToJson, bpeFromJson } from './tokenizer-json.js';
export { Llama2cTokenizer, readLlama2cTokenizer, writeLlama2cTokenizer } from './llama2c.js';
