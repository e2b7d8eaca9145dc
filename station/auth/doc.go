// Package auth knows who is calling: operators (people, with a password and a
// bearer token) and, later, sorters (machines, with a per-sorter key). It
// issues and revokes tokens, resolves a token to a Principal, and answers
// role and station questions about a Principal.
//
// It stores only hashes of passwords (bcrypt) and tokens (SHA-256), and never
// logs either.
package auth
