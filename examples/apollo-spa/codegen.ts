import type { CodegenConfig } from '@graphql-codegen/cli';
import { addTypenameSelectionDocumentTransform } from '@graphql-codegen/client-preset';

// Typed documents from the server's schema: `npm run codegen` rewrites src/gql/ (committed).
// Run it again whenever ../../schema.graphqls or an operation in src/ changes.
//
// Trusted documents: persistedDocuments writes src/gql/persisted-documents.json, every operation of the
// app by its hash ("sha256:<hex>" → document), which the server loads with TRUSTED_DOCUMENTS_FILE, and
// puts each hash on its document (__meta__.hash), which the app sends instead of the text (persisted.ts).
// __typename is added to every selection before hashing, as Apollo's cache adds it to what it sends:
// the server runs the manifest's text, so that text must be what the cache expects.
const config: CodegenConfig = {
  schema: '../../schema.graphqls',
  documents: ['src/**/*.ts', '!src/gql/**/*'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false, persistedDocuments: { hashAlgorithm: 'sha256' } },
      documentTransforms: [addTypenameSelectionDocumentTransform],
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { Time: 'string', JSON: 'unknown' },
      },
    },
  },
};

export default config;
