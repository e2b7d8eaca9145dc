// Package auth knows who is calling: operators (people, with a password and a
// bearer token) and sorters (machines, with a per-sorter key). It issues and
// revokes tokens and sorter keys, resolves a token or key to a Principal, and
// answers role and station questions about a Principal.
//
// It stores only hashes of passwords (bcrypt), tokens and sorter keys
// (SHA-256), and never logs any of them.
package auth
