import { getOperationAST, type DocumentNode } from 'graphql';
import * as generated from './gql/graphql';

// Trusted documents: the server (TRUSTED_DOCUMENTS=require) runs only the operations of
// src/gql/persisted-documents.json, and the app sends their hashes instead of their text. codegen puts
// each operation's hash on its generated document (__meta__.hash, "sha256:<hex>").

type WithMeta = { __meta__?: { hash?: string } };

// By operation name as well: a document that Apollo has transformed (a copy) may have lost __meta__.
const hashByName = new Map<string, string>();
for (const value of Object.values(generated)) {
  if (typeof value !== 'object' || value === null || !('kind' in value)) continue;
  const doc = value as DocumentNode & WithMeta;
  const name = getOperationAST(doc)?.name?.value;
  if (name && doc.__meta__?.hash) hashByName.set(name, doc.__meta__.hash);
}

/**
 * The document identifier of one of the app's operations, "sha256:<hex>" (GraphQL-over-HTTP's
 * documentId). It throws for a document that codegen has not seen: the server would refuse it.
 */
export function documentId(doc: DocumentNode): string {
  const hash = (doc as WithMeta).__meta__?.hash ?? hashByName.get(getOperationAST(doc)?.name?.value ?? '');
  if (!hash) throw new Error('not a trusted document: run npm run codegen');
  return hash;
}

/** The bare hex SHA-256 of one of the app's operations: Apollo's extensions.persistedQuery.sha256Hash. */
export function sha256Hash(doc: DocumentNode): string {
  return documentId(doc).replace(/^sha256:/, '');
}
