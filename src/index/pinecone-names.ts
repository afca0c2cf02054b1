/**
 * The shapes of `index.pinecone.indexes` entries, shared by the config schema (src/config.ts) and the adapter
 * (pinecone-routed.ts) without pulling the Pinecone SDK into the config module.
 */

/** a key: an embedding dimension, a positive integer as JSON object keys spell it */
export const DIMENSION_KEY = /^[1-9][0-9]{0,4}$/;

/** a Pinecone index name: lower-case letters, digits and '-', 1-45 characters, alphanumeric at both ends */
export const PINECONE_INDEX_NAME = /^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$/;
