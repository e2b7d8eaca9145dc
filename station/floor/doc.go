// Package floor is the supervisors' sorter floor: bags hung under chutes
// (bind and unbind, each one idempotent work order that also makes the
// chute ready again), the live view of every chute with its bag's fill, the
// parcels waiting unbagged, open and sealed bags, open handovers and the
// put-aside queue, and the signal that pushes each change to every
// instance's browsers within a second.
//
// It composes the belt (chutes and their states) and packing (bags), which
// may not import each other; the adapter that lets the belt's Confirm fill
// a bag lives here for the same reason.
package floor
