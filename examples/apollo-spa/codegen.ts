import type { CodegenConfig } from '@graphql-codegen/cli';

// Typed documents from the server's schema: `npm run codegen` rewrites src/gql/ (committed).
// Run it again whenever ../../schema.graphqls or an operation in src/ changes.
const config: CodegenConfig = {
  schema: '../../schema.graphqls',
  documents: ['src/**/*.ts', '!src/gql/**/*'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { Time: 'string', JSON: 'unknown' },
      },
    },
  },
};

export default config;
