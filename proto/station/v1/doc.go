// Package stationv1 holds the station's own gRPC API for machines (the
// sorting machine's SorterService), generated from the .proto files beside
// this file by `make proto`. Only this doc.go is written by hand: never edit
// a *.pb.go file, change the .proto and regenerate.
//
// The server lives in station/sorterapi; it only decodes, calls package
// sorting and maps errors to status codes.
package stationv1
