// Package httpapi is the station's HTTP edge: routes (all listed in
// routes.go), middleware, JSON decoding, and the one table that maps domain
// errors to HTTP statuses with stable codes (errors.go). Handlers decode,
// call one domain method and encode; they hold no business rules.
package httpapi
