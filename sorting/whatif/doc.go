// Package whatif replays a window of a station's recorded scans (or an
// uploaded NDJSON of scans) against a candidate chute map, a candidate flow
// version, or both, and reports what the floor would have seen: per chute
// the parcels, the peak fill against the bag limits, the bags needed, when
// the chute would first have been full and how many parcels it turned away;
// overall the exceptions by code and the parcels whose chute, next hop or
// exception would differ.
//
// A replay is a dry run and must never have a side effect: it reads
// sort_results and work_orders through their partitioned parents with the
// window as the partition bound, and writes nothing, to PostgreSQL, Redis or
// the outbox. Where the flow is unchanged the recorded answer serves and no
// downstream call is made; where it changes, the candidate runs through the
// router in dry run (effectful steps skipped, as a shadow run), so its
// downstream calls go through the clients' caches and singleflight.
//
// Both sides go through the same floor model (model.go): "actual" is the
// recorded answers on the live chute map, "candidate" the candidate's
// answers on the candidate map, so a difference comes from the candidate,
// never from the model.
package whatif
