// Package decisionlog records how the belt decided each parcel (sorting/belt):
// how long a Resolve took from receipt to answer, whether it missed the
// sorter's deadline (less the belt's safety margin) and whether it was
// answered from the pre-sorted table, sorted on the fly or fell back to the
// reject chute. It owns the belt_decisions table and the per-sorter report
// read from it (late-decision rate, source mix, recirculations after a late
// answer, latency percentiles).
//
// It must never slow the belt: Record only counts and hands the record to
// a bounded buffer, and a goroutine writes the buffer in batches. A full
// buffer drops the record and counts it; nothing on the belt's path ever
// waits for the database.
package decisionlog
