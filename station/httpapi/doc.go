// Package httpapi is the station's HTTP edge: routes (all listed in
// routes.go), middleware, JSON decoding, and the one switch that maps the
// kind of a domain error (package fault) to an HTTP status; the code comes
// from the error (errors.go). Handlers decode, call one domain method and
// encode; they hold no business rules and name no domain error.
package httpapi
