// Package ident is the station's vocabulary of identifiers: tracking
// numbers, site ids, scan ids, bag ids and handover ids. Each has exactly one
// parser, which trims and normalises what a scanner or a client sent and
// refuses anything else rather than guessing. Every domain package and both
// edges parse with it, so a code accepted at one door is accepted at all.
//
// It is a leaf: it imports nothing of the station's, so sorting, packing,
// workorder, auth and the edges can all depend on it.
package ident
