/** Texts and reference ids shared by the tokenizer tests. */

export const ROUND_TRIP_TEXTS: readonly string[] = [
  'Once upon a time',
  'Hello world',
  '  two leading spaces',
  'trailing spaces   ',
  ' single leading and trailing ',
  'multiple     internal      spaces',
  'line one\nline two\n\n\ttabbed\r\n',
  'naïve café résumé — “quotes” …',
  '日本語のテキスト',
  'Привет, мир!',
  'emoji 🎉🦙 test',
  'family 👨‍👩‍👧‍👦 flag 🇫🇷',
  '12345 + 678 = 13023',
  'x = [1, 2, 3]\n\tprint(x)\n',
  ' ',
];

/**
 * Llama 2 ids for texts encoded without BOS, as the SentencePiece library (0.1.97) gives them for
 * llama2-tokenizer/tokenizer.model.
 */
export const LLAMA2_REFERENCE: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['Hello world', [15043, 3186]],
  ['Hello, world!', [15043, 29892, 3186, 29991]],
  ['  leading and trailing  ', [259, 8236, 322, 25053, 259]],
  ['The quick brown fox jumps over the lazy dog.', [450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889]],
  ['日本語のテキスト', [29871, 30325, 30346, 30968, 30199, 30572, 30454, 30255, 30279]],
  ['emoji 🎉🦙 test', [953, 29877, 2397, 29871, 243, 162, 145, 140, 243, 162, 169, 156, 1243]],
  ['naïve café', [1055, 30085, 345, 274, 28059]],
  ['x = [1, 2, 3]\n\tprint(x)\n', [921, 353, 518, 29896, 29892, 29871, 29906, 29892, 29871, 29941, 29962, 13, 12, 2158, 29898, 29916, 29897, 13]],
];
