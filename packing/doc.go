// Package packing owns bags and handovers: opening a bag for one next hop
// (its id comes from the container service), adding and removing parcels,
// sealing with a weight, the bag label (ZPL for thermal printers and a PNG
// preview), and handing sealed bags over to a departure (a linehaul trip, a
// last-mile rider or a third-party carrier) with its manifest.
//
// Handover lives here rather than in station because it is the last step of
// a bag's life: adding a bag to a handover and closing it change bag rows
// (sealed -> departed) and release the parcels' one-bag guard, and the
// package that owns those tables must be the only one writing them. station
// stays the edge that calls it.
//
// Every write is one PostgreSQL transaction that locks the rows it changes
// (SELECT ... FOR UPDATE), checks the rules in the domain types' own methods
// (a sealed bag refuses parcels in Bag.Add, not in a handler), and records a
// work order with its tracking events through package workorder in the same
// transaction. Every write carries the client's scan id; a replay returns
// the stored response byte for byte and writes nothing.
//
// It must never talk HTTP or gRPC to its callers, never call a downstream
// service inside a transaction, and never import station: it is a plain Go
// API the edge calls.
package packing
